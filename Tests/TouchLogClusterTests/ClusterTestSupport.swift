import Foundation
import Synchronization
import Testing
import TouchLog
import TouchLogTestSupport

@testable import TouchLogCluster

/// A loopback port nothing listens on now (the kernel's pick for port 0).
func freePort() -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = 0
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) }
    }
    _ = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
    }
    return Int(UInt16(bigEndian: address.sin_port))
}

/// True when something accepts TCP connections on the loopback port.
func isListening(_ port: Int) -> Bool {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = UInt16(port).bigEndian
    return withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
        }
    } == 0
}

/// Waits until `condition` holds, checking every 50 ms; false after `timeout`.
func eventually(_ timeout: Duration = .seconds(60), _ condition: () throws -> Bool) rethrows -> Bool {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if try condition() { return true }
        usleep(50_000)
    }
    return try condition()
}

/// NATS servers with JetStream on free loopback ports (several form one NATS cluster), each in its own directory;
/// stopped when released.
final class NATSServers: @unchecked Sendable {
    let directory = TemporaryDirectory()
    let clientPorts: [Int]
    let routePorts: [Int]
    private(set) var processes: [Process?]

    init(count: Int = 1) throws {
        clientPorts = (0..<count).map { _ in freePort() }
        routePorts = (0..<count).map { _ in freePort() }
        processes = Array(repeating: nil, count: count)
        for i in 0..<count { try start(i) }
        for port in clientPorts {
            #expect(eventually(.seconds(15)) { isListening(port) }, "nats-server did not start on port \(port)")
        }
    }

    /// Starts (or restarts) server `i`.
    func start(_ i: Int) throws {
        var arguments = [
            "-js", "-a", "127.0.0.1", "-p", String(clientPorts[i]), "-sd", directory.path + "/js\(i)", "-n",
            "touchlog-test-\(i)",
        ]
        if clientPorts.count > 1 {
            arguments += [
                "--cluster_name", "touchlog-test", "--cluster", "nats://127.0.0.1:\(routePorts[i])",
                "--routes",
                routePorts.enumerated().filter { $0.offset != i }.map { "nats://127.0.0.1:\($0.element)" }.joined(
                    separator: ","),
            ]
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Self.serverPath)
        process.arguments = arguments
        process.standardOutput = FileHandle(forWritingAtPath: "/dev/null")
        process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: directory.file("server\(i).log", "")))
        try process.run()
        processes[i] = process
    }

    static let serverPath =
        ["/usr/bin/nats-server", "/usr/sbin/nats-server", "/usr/local/bin/nats-server"]
        .first { FileManager.default.isExecutableFile(atPath: $0) } ?? "nats-server"

    var urls: [String] { clientPorts.map { "nats://127.0.0.1:\($0)" } }
    var urlList: String { urls.joined(separator: ",") }

    /// Kills server `i` at once (SIGKILL).
    func kill(_ i: Int) {
        guard let process = processes[i] else { return }
        Foundation.kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        processes[i] = nil
    }

    /// Creates the cluster, retrying while JetStream elects its leaders (a NATS cluster needs a few seconds).
    func initialise(partitions: Int, replicas: Int = 1, leaseMilliseconds: Int64 = 5_000) throws -> ClusterConfig {
        var lastError: (any Error)?
        let deadline = ContinuousClock.now + .seconds(90)
        while ContinuousClock.now < deadline {
            do {
                return try ClusterClient.initialise(
                    urls: urls, partitions: partitions, replicas: replicas, leaseMilliseconds: leaseMilliseconds
                ).config
            } catch {
                lastError = error
                usleep(250_000)
            }
        }
        throw lastError!
    }

    deinit {
        for process in processes.compactMap({ $0 }) {
            Foundation.kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
    }
}

/// The built `touchlog` executable (next to the test bundle).
let touchlogExecutable: String = {
    var directory = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
    if let resolved = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") {
        directory = URL(fileURLWithPath: resolved).deletingLastPathComponent()
    }
    while directory.path != "/" {
        let candidate = directory.appendingPathComponent("touchlog").path
        if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        directory.deleteLastPathComponent()
    }
    fatalError("no touchlog executable beside the tests; run `swift build` first")
}()

/// A `touchlog node` process (or another long-running command); killed when released.
final class NodeProcess: @unchecked Sendable {
    let process = Process()
    let log: String

    convenience init(urls: String, data: String, name: String, log: String) throws {
        try self.init(arguments: ["node", "--nats", urls, "--data", data, "--name", name], log: log)
    }

    /// Any `touchlog` command that runs until stopped (`serve`, say), its standard error in `log`.
    init(arguments: [String], log: String) throws {
        self.log = log
        process.executableURL = URL(fileURLWithPath: touchlogExecutable)
        process.arguments = arguments
        _ = FileManager.default.createFile(atPath: log, contents: nil)
        process.standardOutput = FileHandle(forWritingAtPath: "/dev/null")
        process.standardError = FileHandle(forWritingAtPath: log)
        try process.run()
    }

    func signal(_ number: Int32) { Foundation.kill(process.processIdentifier, number) }

    /// SIGKILL, and waits for it to be gone.
    func kill() {
        guard process.isRunning else { return }
        signal(SIGKILL)
        process.waitUntilExit()
    }

    var output: String { (try? String(contentsOfFile: log, encoding: .utf8)) ?? "" }

    deinit { kill() }
}

/// The result of running `touchlog`.
struct Run {
    var status: Int32
    var stdout: String
    var stderr: String
}

/// Runs `touchlog ARGS` to the end.
@discardableResult
func touchlog(_ arguments: [String], stdin: String? = nil) throws -> Run {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: touchlogExecutable)
    process.arguments = arguments
    var environment = ProcessInfo.processInfo.environment
    environment.removeValue(forKey: "TOUCHLOG_STORE")
    environment.removeValue(forKey: "TOUCHLOG_NATS")
    process.environment = environment
    let directory = TemporaryDirectory()
    let out = directory.path + "/out"
    let err = directory.path + "/err"
    _ = FileManager.default.createFile(atPath: out, contents: nil)
    _ = FileManager.default.createFile(atPath: err, contents: nil)
    process.standardOutput = FileHandle(forWritingAtPath: out)
    process.standardError = FileHandle(forWritingAtPath: err)
    if let stdin {
        let input = directory.file("in", stdin)
        process.standardInput = FileHandle(forReadingAtPath: input)
    }
    try process.run()
    process.waitUntilExit()
    return Run(
        status: process.terminationStatus, stdout: (try? String(contentsOfFile: out, encoding: .utf8)) ?? "",
        stderr: (try? String(contentsOfFile: err, encoding: .utf8)) ?? "")
}

/// In-process nodes for a test, stopped (leases released) when released.
final class RunningNodes: @unchecked Sendable {
    let nodes: [ClusterNode]

    final class Reports: Sendable {
        let lines = Mutex<[String]>([])
    }

    /// What the nodes reported (claims, releases, failures), for a failing test's message.
    let reports = Reports()

    init(urls: [String], directory: TemporaryDirectory, names: [String]) throws {
        let reports = self.reports
        nodes = try names.map { name in
            try ClusterNode(urls: urls, dataDirectory: directory.path + "/" + name, name: name) { line in
                reports.lines.withLock { $0.append("\(name): \(line)") }
            }
        }
        for node in nodes { node.start() }
    }

    /// Waits until the nodes own every partition between them.
    func waitForOwners(_ partitions: Int) -> Bool {
        eventually(.seconds(60)) { nodes.reduce(0) { $0 + $1.ownedPartitions.count } == partitions }
    }

    var log: String { reports.lines.withLock { $0.joined(separator: "\n") } }

    func stop() {
        for node in nodes { node.stop() }
        for node in nodes { node.waitUntilStopped() }
    }
}
