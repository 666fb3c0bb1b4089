#if TOUCHLOG_FAULT_INJECTION
    #if canImport(Glibc)
        import Glibc
    #elseif canImport(Musl)
        import Musl
    #elseif canImport(Darwin)
        import Darwin
    #endif
    import Synchronization

    /// A fault-injecting layer under every file operation of ``SystemFile`` below one directory, for tests. Compiled only
    /// in debug builds (`TOUCHLOG_FAULT_INJECTION`, which Package.swift sets for them).
    ///
    /// Installed for a directory (``install(root:)``), it numbers the mutating operations made on paths under it
    /// (create, write, sync, truncate, rename, remove, mkdir, directory sync) and can make operation N:
    /// - crash: the operation does not happen (a write may happen in part, torn at a 512-byte or 4-KiB boundary) and
    ///   every later one fails, as if the process died there; then ``powerLoss(_:)`` decides what the disk kept;
    /// - fail with EIO or ENOSPC, once or from then on (`persistent`), as a failing disk or a full one does.
    ///
    /// It tracks what is durable: for each file, the size at its last fsync (log files only grow between syncs, and
    /// are only cut by recovery); for each directory, the entries created or renamed since its last sync. A power loss
    /// then drops unsynced data (or keeps a torn part of it, or leaves the grown space full of garbage) and forgets
    /// directory entries that were never synced.
    ///
    /// Paths outside every installed root pay one atomic load.
    package final class FaultInjector: @unchecked Sendable {
        package enum Failure: Sendable, Equatable {
            /// The process dies at the operation; a write there keeps its bytes up to the last multiple of `tornAt` in the
            /// file (none when nil).
            case crash(tornAt: Int?)
            /// The operation fails with this errno.
            case error(Int32, persistent: Bool)
        }

        /// What a power loss leaves of data written since the file's last fsync.
        package enum PowerLoss: Sendable, CaseIterable {
            /// Nothing.
            case dropUnsynced
            /// A prefix, cut at a 512-byte boundary.
            case tornAt512
            /// A prefix, cut at a 4-KiB boundary.
            case tornAt4K
            /// The file keeps its size, but the unsynced bytes are garbage.
            case garbage
        }

        package let root: String
        private struct State {
            var operations = 0
            var failAt: Int?
            var failure = Failure.crash(tornAt: nil)
            var dead = false
            var failing = false
            /// Size of each file at its last fsync.
            var durableSize: [String: Int64] = [:]
            /// Entries made in each directory since its last sync: (path, the path it was renamed from or nil if created).
            var pendingEntries: [String: [(path: String, from: String?)]] = [:]
            var log: [String] = []
        }
        private let state = Mutex(State())

        private static let installed = Mutex<[FaultInjector]>([])
        private static let anyInstalled = Atomic<Bool>(false)

        private init(root: String) { self.root = root }

        /// Starts injecting under `root` (an absolute directory); every file already there counts as durable.
        package static func install(root: String) -> FaultInjector {
            let injector = FaultInjector(root: root.hasSuffix("/") ? String(root.dropLast()) : root)
            installed.withLock { $0.append(injector) }
            anyInstalled.store(true, ordering: .releasing)
            return injector
        }

        /// Stops injecting.
        package func uninstall() {
            Self.installed.withLock { list in
                list.removeAll { $0 === self }
                Self.anyInstalled.store(!list.isEmpty, ordering: .releasing)
            }
        }

        /// Makes operation `number` (counting from 0, from installation) fail as `failure`.
        package func fail(at number: Int, _ failure: Failure) {
            state.withLock {
                $0.failAt = number
                $0.failure = failure
            }
        }

        /// How many mutating operations have been made so far.
        package var operations: Int { state.withLock { $0.operations } }
        /// Each operation made, numbered, for failure messages.
        package var operationLog: [String] { state.withLock { $0.log } }

        static func injector(for path: String) -> FaultInjector? {
            guard anyInstalled.load(ordering: .acquiring) else { return nil }
            return installed.withLock { list in list.first { path == $0.root || path.hasPrefix($0.root + "/") } }
        }

        /// Called before a mutating operation on `path`: numbers it, and throws the injected failure when it is due.
        /// For a write, returns how many of its bytes to write before failing (a torn write), or nil for all.
        func before(_ call: String, _ path: String, writing count: Int = 0, at position: Int64 = 0)
            throws(SystemCallError) -> Int?
        {
            let outcome: (error: Int32?, torn: Int?) = state.withLock { s in
                if s.dead { return (EIO, nil) }
                let number = s.operations
                s.operations += 1
                s.log.append("\(number) \(call) \(path.dropFirst(root.count))")
                if s.failing { return (EIO, nil) }
                guard number == s.failAt else { return (nil, nil) }
                switch s.failure {
                case .crash(let tornAt):
                    s.dead = true
                    guard let tornAt, count > 0 else { return (EIO, nil) }
                    // Keep the bytes up to the last `tornAt` boundary of the file inside this write.
                    let end = (position + Int64(count)) / Int64(tornAt) * Int64(tornAt)
                    return (EIO, end > position ? Int(end - position) : nil)
                case .error(let code, let persistent):
                    if persistent { s.failing = true }
                    return (code, nil)
                }
            }
            guard let code = outcome.error else { return nil }
            if let torn = outcome.torn { return torn }  // the caller writes this much, then reports the error
            throw SystemCallError(call: call + " " + path + " (injected)", errno: code)
        }

        func created(_ path: String) {
            state.withLock { s in
                if s.durableSize[path] == nil { s.durableSize[path] = 0 }
                s.pendingEntries[Self.parent(of: path), default: []].append((path, nil))
            }
        }

        func synced(_ path: String, size: Int64) {
            state.withLock { $0.durableSize[path] = size }
        }

        func truncated(_ path: String, to size: Int64) {
            state.withLock { s in
                if let durable = s.durableSize[path], durable > size { s.durableSize[path] = size }
            }
        }

        func renamed(_ from: String, _ to: String) {
            state.withLock { s in
                s.durableSize[to] = s.durableSize.removeValue(forKey: from)
                s.pendingEntries[Self.parent(of: to), default: []].append((to, from))
            }
        }

        func syncedDirectory(_ path: String) {
            _ = state.withLock { $0.pendingEntries.removeValue(forKey: path) }
        }

        /// Applies a power loss to the files under the root: unsynced directory entries are undone (newest first: a
        /// rename goes back, a creation disappears), and each file keeps what `mode` says of its unsynced bytes.
        package func powerLoss(_ mode: PowerLoss, seed: UInt64 = 1) {
            let s = state.withLock { $0 }
            for (_, entries) in s.pendingEntries {
                for entry in entries.reversed() {
                    if let from = entry.from { _ = rename(entry.path, from) } else { _ = unlink(entry.path) }
                }
            }
            var random = seed | 1
            for (path, durable) in s.durableSize {
                var info = stat()
                guard stat(path, &info) == 0 else { continue }
                let size = Int64(info.st_size)
                guard size > durable else { continue }
                random ^= random << 13
                random ^= random >> 7
                random ^= random << 17
                switch mode {
                case .dropUnsynced:
                    _ = truncate(path, off_t(durable))
                case .tornAt512, .tornAt4K:
                    let block: Int64 = mode == .tornAt512 ? 512 : 4096
                    let keep = durable + Int64(random % UInt64(size - durable + 1))
                    _ = truncate(path, off_t(max(durable, keep / block * block)))
                case .garbage:
                    let fd = open(path, O_WRONLY | O_CLOEXEC)
                    guard fd >= 0 else { continue }
                    var garbage = [UInt8](repeating: 0, count: Int(size - durable))
                    for i in garbage.indices {
                        random ^= random << 13
                        random ^= random >> 7
                        random ^= random << 17
                        garbage[i] = UInt8(truncatingIfNeeded: random)
                    }
                    _ = garbage.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, off_t(durable)) }
                    close(fd)
                }
            }
        }

        private static func parent(of path: String) -> String {
            guard let slash = path.lastIndex(of: "/") else { return "." }
            return slash == path.startIndex ? "/" : String(path[..<slash])
        }
    }
#endif
