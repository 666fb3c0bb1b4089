// The storage types TouchLog's public API hands out or takes, re-exported so that a service needs only
// `import TouchLog` to use them (their members included, under MemberImportVisibility); the rest of
// TouchLogStorage stays behind its own import.
@_exported import struct TouchLogStorage.BlockHash
@_exported import struct TouchLogStorage.LogOptions
@_exported import struct TouchLogStorage.RecoveryReport
@_exported import struct TouchLogStorage.VerifyReport
