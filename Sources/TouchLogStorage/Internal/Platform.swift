#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#else
    #error("touchlog needs a POSIX C library")
#endif

/// The process-level system calls touchlog makes outside files: the clock, the process, the terminal, the standard
/// streams. With ``SystemFile`` (files and directories) and, in debug builds, ``FaultInjector``, this is the only
/// place in the package that imports the platform's C library; everything else calls these.
package enum Platform {
    /// The number of cores online when it was first asked (at least 1). Read once: glibc answers
    /// `sysconf(_SC_NPROCESSORS_ONLN)` by opening and parsing a file under /sys, which, asked at every append, cost
    /// a few percent of the server's CPU.
    package static let processorCount: Int = max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))

    /// This process's id.
    package static var processID: Int32 { getpid() }

    /// The C library's text for an error number ("No such file or directory").
    package static func errorText(_ code: Int32) -> String {
        String(cString: strerror(code))
    }

    /// Blocks the calling thread for `milliseconds`.
    package static func sleep(milliseconds: Int) {
        usleep(useconds_t(milliseconds * 1000))
    }

    /// Milliseconds since the Unix epoch from the real-time clock.
    package static func nowMilliseconds() -> Int64 {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        return Int64(spec.tv_sec) * 1000 + Int64(spec.tv_nsec) / 1_000_000
    }

    /// Nanoseconds from a monotonic clock, for measuring intervals.
    package static func monotonicNanoseconds() -> UInt64 {
        var spec = timespec()
        clock_gettime(CLOCK_MONOTONIC, &spec)
        return UInt64(spec.tv_sec) * 1_000_000_000 + UInt64(spec.tv_nsec)
    }

    /// This machine's host name ("" when it has none).
    package static var hostName: String {
        var buffer = [CChar](repeating: 0, count: 256)
        guard gethostname(&buffer, buffer.count - 1) == 0 else { return "" }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// The value of an environment variable.
    package static func environment(_ name: String) -> String? {
        getenv(name).map { String(cString: $0) }
    }

    /// Whether a standard stream is a terminal.
    package static func isTerminal(_ stream: StandardStream) -> Bool {
        isatty(stream.descriptor) == 1
    }

    /// The signals that ask a process to end: SIGTERM and SIGINT.
    package static let terminationSignals: [Int32] = [SIGTERM, SIGINT]

    /// Stops signal `number` from ending the process (a signal source handles it instead).
    package static func ignoreSignal(_ number: Int32) {
        _ = signal(number, SIG_IGN)
    }

    /// Raises the calling thread's nice value to `nice` (Linux: the nice value is a thread's own; elsewhere, nothing),
    /// so that the scheduler gives it less of a busy CPU than threads at the default 0. A thread cannot lower it back
    /// without privileges. Returns whether it was set.
    @discardableResult
    package static func setCurrentThreadNice(_ nice: Int32) -> Bool {
        #if os(Linux)
            // (PRIO_PROCESS with 0 names the calling thread on Linux.)
            return setpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0, nice) == 0
        #else
            return false
        #endif
    }

    /// The calling thread's nice value (Linux; elsewhere the process's).
    package static func currentThreadNice() -> Int32 {
        #if os(Linux)
            return getpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0)
        #else
            return getpriority(PRIO_PROCESS, 0)
        #endif
    }

    /// Ends the process at once with `status`, without running anything else.
    package static func exit(_ status: Int32) -> Never {
        systemExit(status)
    }
}

/// A thread of the operating system's own, for loops that block in C calls (NATS waits), which must not hold a thread
/// of the pools that Swift concurrency and queries run on. Join it or detach it, once.
package struct SystemThread: @unchecked Sendable {
    // @unchecked: a thread handle, only compared and passed to pthread calls.
    private let handle: pthread_t

    /// Runs `body` on a new thread.
    package static func start(_ body: @escaping @Sendable () -> Void) -> SystemThread {
        final class Body {
            let run: @Sendable () -> Void
            init(_ run: @escaping @Sendable () -> Void) { self.run = run }
        }
        let context = Unmanaged.passRetained(Body(body)).toOpaque()
        #if canImport(Darwin)
            var thread: pthread_t?
        #else
            var thread = pthread_t()
        #endif
        let status = pthread_create(
            &thread, nil,
            { context in
                Unmanaged<Body>.fromOpaque(context!).takeRetainedValue().run()
                return nil
            }, context)
        precondition(status == 0, "cannot start a thread: \(Platform.errorText(status))")
        #if canImport(Darwin)
            return SystemThread(handle: thread!)
        #else
            return SystemThread(handle: thread)
        #endif
    }

    /// Runs `body` on a new thread that nobody waits for.
    package static func detached(_ body: @escaping @Sendable () -> Void) {
        start(body).detach()
    }

    /// Waits for the thread to finish.
    package func join() {
        pthread_join(handle, nil)
    }

    /// Lets the thread finish on its own.
    package func detach() {
        pthread_detach(handle)
    }

    /// True on the thread itself.
    package var isCurrent: Bool {
        pthread_equal(handle, pthread_self()) != 0
    }
}

/// The C library's memory routines, for the hot loops that compare and search raw bytes.
package enum Memory {
    /// Whether `count` bytes at `a` and at `b` are equal.
    @inlinable
    package static func equal(_ a: UnsafeRawPointer, _ b: UnsafeRawPointer, count: Int) -> Bool {
        memcmp(a, b, count) == 0
    }

    /// The offset of the first `byte` in the `count` bytes at `start`.
    @inlinable
    package static func firstOffset(of byte: UInt8, in start: UnsafeRawPointer, count: Int) -> Int? {
        guard let found = memchr(start, Int32(byte), count) else { return nil }
        return start.distance(to: UnsafeRawPointer(found))
    }
}

/// Standard output and error, as descriptors (standard input is read as ``SystemFile/standardInput``).
package enum StandardStream: Sendable {
    case output, error

    package var descriptor: Int32 {
        switch self {
        case .output: 1
        case .error: 2
        }
    }

    /// Writes all of `bytes`, retrying short writes and interrupts.
    package func write(_ bytes: UnsafeRawBufferPointer) throws(SystemCallError) {
        var done = 0
        while done < bytes.count {
            let n = systemWrite(descriptor, bytes.baseAddress! + done, bytes.count - done)
            if n < 0 {
                if errno == EINTR { continue }
                throw SystemCallError(call: "write", errno: errno)
            }
            done += n
        }
    }

    package func write(_ bytes: [UInt8]) throws(SystemCallError) {
        let failure = bytes.withUnsafeBytes { raw in Result { () throws(SystemCallError) in try write(raw) } }
        try failure.get()
    }

    package func write(_ text: String) throws(SystemCallError) {
        try write(Array(text.utf8))
    }
}

// The C functions under names the methods above do not shadow.
private func systemWrite(_ fd: Int32, _ bytes: UnsafeRawPointer, _ count: Int) -> Int { write(fd, bytes, count) }
private func systemExit(_ status: Int32) -> Never { exit(status) }
