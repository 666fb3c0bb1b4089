import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// A file descriptor with the few calls the log needs, each turning `errno` into a typed error.
///
/// Every file and directory operation of the package goes through this file (the rest of the system calls through
/// ``Platform``), so that the fault-injecting layer (``FaultInjector``, for tests) has one place to intercept, and
/// the platform's C library is imported here and there only. The injector exists only in debug builds
/// (`TOUCHLOG_FAULT_INJECTION`, set by Package.swift for them): a release build makes the calls and nothing else.
package struct SystemFile: Sendable {
    package let descriptor: Int32
    /// The path the file was opened with, for messages.
    package let path: String

    package enum Mode {
        case readOnly
        case readWrite
        case createReadWrite
        /// Creates the file, or empties the one there (an output the user named, such as a rejects file).
        case replace
        /// Creates a new file readable and writable by its owner only (a private key); fails when one exists.
        case createPrivate
    }

    package static func open(_ path: String, _ mode: Mode) throws(SystemCallError) -> SystemFile {
        let flags: Int32
        switch mode {
        case .readOnly: flags = O_RDONLY | O_CLOEXEC
        case .readWrite: flags = O_RDWR | O_CLOEXEC
        case .createReadWrite: flags = O_RDWR | O_CREAT | O_CLOEXEC
        case .replace: flags = O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC
        case .createPrivate: flags = O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC
        }
        #if TOUCHLOG_FAULT_INJECTION
            let injector = mode == .createReadWrite ? FaultInjector.injector(for: path) : nil
            let creating = injector != nil && !exists(path)
            if creating { _ = try injector!.before("create", path) }
        #endif
        let fd = retryOnInterrupt { systemOpen(path, flags, mode == .createPrivate ? 0o600 : 0o644) }
        guard fd >= 0 else { throw SystemCallError(call: "open \(path)", errno: errno) }
        #if TOUCHLOG_FAULT_INJECTION
            if creating { injector!.created(path) }
        #endif
        return SystemFile(descriptor: fd, path: path)
    }

    /// Standard input, to read as a stream (``readNext(into:)``); closing it does nothing.
    package static let standardInput = SystemFile(descriptor: 0, path: "-")

    package func close() {
        if descriptor > 0 { _ = systemClose(descriptor) }
    }

    /// What a path or a descriptor is.
    package struct Status: Sendable {
        package enum Kind: Sendable { case file, directory, other }
        package let kind: Kind
        package let size: Int64
        /// The permission bits (`0o644`).
        package let permissions: UInt32

        init(_ info: stat) {
            switch info.st_mode & S_IFMT {
            case S_IFREG: kind = .file
            case S_IFDIR: kind = .directory
            default: kind = .other
            }
            size = Int64(info.st_size)
            permissions = UInt32(info.st_mode) & 0o7777
        }
    }

    package func status() throws(SystemCallError) -> Status {
        var info = stat()
        guard fstat(descriptor, &info) == 0 else { throw SystemCallError(call: "fstat \(path)", errno: errno) }
        return Status(info)
    }

    /// What is at `path`, following links; nil when nothing is (or it cannot be reached).
    package static func status(_ path: String) -> Status? {
        var info = stat()
        return stat(path, &info) == 0 ? Status(info) : nil
    }

    package func size() throws(SystemCallError) -> Int64 {
        try status().size
    }

    /// Reads the next bytes of a stream (standard input, a pipe, a file read from its start) into `buffer`: how many
    /// came, 0 at its end.
    package func readNext(into buffer: UnsafeMutableRawBufferPointer) throws(SystemCallError) -> Int {
        guard buffer.count > 0 else { return 0 }
        let n = retryOnInterrupt { systemRead(descriptor, buffer.baseAddress!, buffer.count) }
        guard n >= 0 else { throw SystemCallError(call: "read \(path)", errno: errno) }
        return n
    }

    /// Reads up to `count` bytes from `position` into a new array (shorter only at end of file), filled straight
    /// by the kernel: no zeroing pass first.
    package func read(at position: Int64, count: Int) throws(SystemCallError) -> [UInt8] {
        var result = Result<Int, SystemCallError>.success(0)
        let bytes = [UInt8](unsafeUninitializedCapacity: count) { buffer, initialized in
            adviseHugePages(UnsafeMutableRawBufferPointer(buffer))
            result = fill(UnsafeMutableRawBufferPointer(buffer), from: position)
            initialized = (try? result.get()) ?? 0
        }
        _ = try result.get()
        return bytes
    }

    /// Fills `buffer` from `position`; returns how many bytes were read (less than the buffer only at end of file).
    package func read(at position: Int64, into buffer: inout [UInt8]) throws(SystemCallError) -> Int {
        try buffer.withUnsafeMutableBytes { fill($0, from: position) }.get()
    }

    /// Reads from `position` until `buffer` is full or the file ends; the number of bytes read, or the failed pread.
    private func fill(_ buffer: UnsafeMutableRawBufferPointer, from position: Int64) -> Result<Int, SystemCallError> {
        var total = 0
        while total < buffer.count {
            let n = retryOnInterrupt {
                pread(descriptor, buffer.baseAddress! + total, buffer.count - total, off_t(position) + off_t(total))
            }
            if n < 0 { return .failure(SystemCallError(call: "pread \(path)", errno: errno)) }
            if n == 0 { break }
            total += n
        }
        return .success(total)
    }

    /// Writes all of `bytes` at `position`.
    package func write(_ bytes: UnsafeRawBufferPointer, at position: Int64) throws(SystemCallError) {
        #if TOUCHLOG_FAULT_INJECTION
            if let injector = FaultInjector.injector(for: path),
                let torn = try injector.before("pwrite", path, writing: bytes.count, at: position)
            {
                // An injected crash in the middle of this write: part of it reaches the file.
                try write(UnsafeRawBufferPointer(rebasing: bytes[..<torn]), at: position)
                throw SystemCallError(call: "pwrite \(path) (injected crash after \(torn) bytes)", errno: EIO)
            }
        #endif
        var done = 0
        while done < bytes.count {
            let n = retryOnInterrupt {
                pwrite(descriptor, bytes.baseAddress! + done, bytes.count - done, off_t(position) + off_t(done))
            }
            if n < 0 { throw SystemCallError(call: "pwrite \(path)", errno: errno) }
            done += n
        }
    }

    package func write(_ bytes: [UInt8], at position: Int64) throws(SystemCallError) {
        let result: SystemCallError? = bytes.withUnsafeBytes { raw in
            do throws(SystemCallError) {
                try write(raw, at: position)
                return nil
            } catch { return error }
        }
        if let result { throw result }
    }

    package func sync() throws(SystemCallError) {
        #if TOUCHLOG_FAULT_INJECTION
            let injector = FaultInjector.injector(for: path)
            _ = try injector?.before("fsync", path)
        #endif
        guard retryOnInterrupt({ fsync(descriptor) }) == 0 else {
            throw SystemCallError(call: "fsync \(path)", errno: errno)
        }
        #if TOUCHLOG_FAULT_INJECTION
            if let injector {
                if Self.isDirectory(path) {
                    injector.syncedDirectory(path)
                } else {
                    injector.synced(path, size: try size())
                }
            }
        #endif
    }

    package func truncate(to size: Int64) throws(SystemCallError) {
        #if TOUCHLOG_FAULT_INJECTION
            let injector = FaultInjector.injector(for: path)
            _ = try injector?.before("ftruncate", path)
        #endif
        guard retryOnInterrupt({ ftruncate(descriptor, off_t(size)) }) == 0 else {
            throw SystemCallError(call: "ftruncate \(path)", errno: errno)
        }
        #if TOUCHLOG_FAULT_INJECTION
            injector?.truncated(path, to: size)
        #endif
    }

    /// Takes an exclusive advisory lock without waiting; returns false when another process holds it.
    package func tryLockExclusive() throws(SystemCallError) -> Bool {
        if flock(descriptor, LOCK_EX | LOCK_NB) == 0 { return true }
        if errno == EWOULDBLOCK { return false }
        throw SystemCallError(call: "flock \(path)", errno: errno)
    }

    /// Flushes a directory's entries (after creating, renaming or removing a file in it).
    package static func syncDirectory(_ path: String) throws(SystemCallError) {
        let directory = try open(path, .readOnly)
        defer { directory.close() }
        try directory.sync()
    }

    package static func remove(_ path: String) throws(SystemCallError) {
        #if TOUCHLOG_FAULT_INJECTION
            _ = try FaultInjector.injector(for: path)?.before("unlink", path)
        #endif
        guard unlink(path) == 0 else { throw SystemCallError(call: "unlink \(path)", errno: errno) }
    }

    package static func rename(_ from: String, _ to: String) throws(SystemCallError) {
        #if TOUCHLOG_FAULT_INJECTION
            let injector = FaultInjector.injector(for: to)
            _ = try injector?.before("rename", to)
        #endif
        guard systemRename(from, to) == 0 else { throw SystemCallError(call: "rename \(from)", errno: errno) }
        #if TOUCHLOG_FAULT_INJECTION
            injector?.renamed(from, to)
        #endif
    }

    /// Makes a directory; true when it made one, false when one was already there.
    @discardableResult
    package static func makeDirectory(_ path: String) throws(SystemCallError) -> Bool {
        #if TOUCHLOG_FAULT_INJECTION
            let injector = exists(path) ? nil : FaultInjector.injector(for: path)
            _ = try injector?.before("mkdir", path)
        #endif
        guard mkdir(path, 0o755) == 0 else {
            if errno == EEXIST { return false }
            throw SystemCallError(call: "mkdir \(path)", errno: errno)
        }
        #if TOUCHLOG_FAULT_INJECTION
            injector?.created(path)
        #endif
        return true
    }

    /// Removes an empty directory.
    package static func removeDirectory(_ path: String) throws(SystemCallError) {
        #if TOUCHLOG_FAULT_INJECTION
            _ = try FaultInjector.injector(for: path)?.before("rmdir", path)
        #endif
        guard rmdir(path) == 0 else { throw SystemCallError(call: "rmdir \(path)", errno: errno) }
    }

    package static func exists(_ path: String) -> Bool {
        status(path) != nil
    }

    package static func isDirectory(_ path: String) -> Bool {
        status(path)?.kind == .directory
    }

    /// The names in a directory, without `.` and `..`.
    package static func list(_ path: String) throws(SystemCallError) -> [String] {
        guard let dir = opendir(path) else { throw SystemCallError(call: "opendir \(path)", errno: errno) }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }
}

extension SystemCallError {
    /// The call failed because the path does not exist.
    package var isNotFound: Bool { errno == ENOENT }

    /// The call wrote to a pipe whose reader has gone (`| head`).
    package var isBrokenPipe: Bool { errno == EPIPE }

    /// The C library's text for the error ("No such file or directory").
    package var reason: String { Platform.errorText(errno) }
}

// The C functions under names SystemFile's methods do not shadow.
private func systemOpen(_ path: String, _ flags: Int32, _ mode: mode_t) -> Int32 { open(path, flags, mode) }
private func systemClose(_ fd: Int32) -> Int32 { close(fd) }
private func systemRead(_ fd: Int32, _ bytes: UnsafeMutableRawPointer, _ count: Int) -> Int { read(fd, bytes, count) }
private func systemRename(_ from: String, _ to: String) -> Int32 { rename(from, to) }

@inline(__always)
private func retryOnInterrupt<T: BinaryInteger>(_ body: () -> T) -> T {
    while true {
        let result = body()
        if result < 0 && errno == EINTR { continue }
        return result
    }
}

/// Asks the kernel to back the 2 MiB-aligned part of `buffer` with transparent huge pages (when it is at least
/// 4 MiB; where huge pages are off, or always on, this changes nothing). Filling a large fresh buffer otherwise
/// takes a page fault per 4 KiB: a large share of the time of loading a snapshot.
package func adviseHugePages(_ buffer: UnsafeMutableRawBufferPointer) {
    let huge = 2 << 20
    guard let base = buffer.baseAddress, buffer.count >= 2 * huge else { return }
    let start = (Int(bitPattern: base) + huge - 1) & ~(huge - 1)
    let end = (Int(bitPattern: base) + buffer.count) & ~(huge - 1)
    guard end > start else { return }
    #if os(Linux)
        _ = madvise(UnsafeMutableRawPointer(bitPattern: start), end - start, MADV_HUGEPAGE)
    #endif
}

/// Zero-filled memory straight from the kernel, aligned to 2 MiB and advised to transparent huge pages, so that a
/// column of millions of entries, touched at random, takes a page fault per 2 MiB instead of per 4 KiB, and pages
/// never touched cost nothing. For a query's per-profile columns; ``release()`` returns it.
///
/// An owner that has made every byte zero again gives it back with ``recycle()`` instead: the next query of about
/// the same size then gets memory already mapped and zero, with no page faults and no zeroing by the kernel (which
/// was a third of a query's time at a million profiles). A few mappings are kept (see ``pooledBytes``).
package struct ZeroedMemory: @unchecked Sendable {
    // @unchecked: a plain address range; who writes where is the owner's business.
    package let base: UnsafeMutableRawPointer
    private let mapping: UnsafeMutableRawPointer
    private let length: Int
    /// How many bytes from `base` the mapping holds.
    private let usable: Int

    /// Mappings given back, every byte zero, for the next ``init(bytes:)``.
    private static let pool = Mutex<[ZeroedMemory]>([])
    /// At most this many bytes, and ``pooledMappings`` mappings, are kept for reuse; beyond, memory goes back to the
    /// kernel.
    package static let pooledBytes = 512 << 20
    package static let pooledMappings = 8

    /// At least `bytes` zero bytes (one page for 0).
    package init(bytes: Int) {
        let reused = Self.pool.withLock { pool -> ZeroedMemory? in
            // The smallest that is big enough.
            guard
                let k = pool.indices.filter({ pool[$0].usable >= bytes }).min(by: { pool[$0].usable < pool[$1].usable })
            else { return nil }
            return pool.remove(at: k)
        }
        if let reused {
            assert(
                UnsafeRawBufferPointer(start: reused.base, count: reused.usable).allSatisfy { $0 == 0 },
                "recycled memory must be all zero")
            self = reused
            return
        }
        let huge = 2 << 20
        let size = max(bytes, 1)
        // Large ones: whole huge pages, plus room to align the first of them.
        let rounded = (size + huge - 1) & ~(huge - 1)
        let length = size >= huge ? rounded + huge : size
        guard let mapping = mmap(nil, length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0),
            mapping != MAP_FAILED
        else {
            fatalError("cannot map \(length) bytes of memory: \(String(cString: strerror(errno)))")
        }
        self.mapping = mapping
        self.length = length
        if size >= huge {
            let aligned = (Int(bitPattern: mapping) + huge - 1) & ~(huge - 1)
            base = UnsafeMutableRawPointer(bitPattern: aligned)!
            usable = rounded
            #if os(Linux)
                _ = madvise(base, rounded, MADV_HUGEPAGE)
            #endif
        } else {
            base = mapping
            usable = length
        }
    }

    /// Returns the memory to the kernel.
    package func release() {
        _ = munmap(mapping, length)
    }

    /// Keeps the memory for a later ``init(bytes:)``, or returns it to the kernel when the pool is full. The caller
    /// must have made every byte zero again.
    package func recycle() {
        let kept = Self.pool.withLock { pool in
            guard pool.count < Self.pooledMappings, pool.reduce(length, { $0 + $1.length }) <= Self.pooledBytes else {
                return false
            }
            pool.append(self)
            return true
        }
        if !kept { release() }
    }
}
