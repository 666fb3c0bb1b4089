import Dispatch
import Synchronization
import TouchLog
import TouchLogStorage

/// A cluster node: claims partitions by lease, applies each partition's stream to a local store under its data
/// directory (`DIR/p<N>`, an ordinary touchlog store), and answers requests for the partitions it owns.
///
/// Each stream message becomes one local commit, recorded at the message's JetStream time and carrying an
/// ``AppliedRecord`` (the stream sequence), and is acknowledged only after that commit is durable; a node that
/// restarts resumes after the last sequence its store records, so no message is applied twice or skipped.
public final class ClusterNode: Sendable {
    public let name: String
    public let dataDirectory: String
    public let config: ClusterConfig
    let nats: NATSConnection
    let leases: NATSKeyValue
    let nodes: NATSKeyValue
    let report: @Sendable (String) -> Void
    private let state = Mutex(State())

    private struct State {
        var owned: [Int: OwnedPartition] = [:]
        var stopping = false
        var stopped = false
        var waiters: [@Sendable () -> Void] = []
        var roundsOverShare = 0
        /// When the leases held were last renewed.
        var renewed = ContinuousClock.now
    }

    /// Connects, checks the data directory belongs to this cluster, and registers the node; `report` gets one line per
    /// thing worth knowing (claims, releases, failures).
    public init(
        urls: [String], dataDirectory: String, name: String? = nil,
        report: @escaping @Sendable (String) -> Void = { _ in }
    ) throws(ClusterError) {
        let client = try ClusterClient(urls: urls, name: "touchlog-node")
        self.nats = client.nats
        self.config = client.config
        self.leases = client.leases
        guard let nodes = try wrap({ () throws(NATSError) in try client.nats.keyValue(ClusterConfig.nodeBucket) })
        else {
            throw ClusterError(
                .notInitialised,
                "the cluster at \(urls.joined(separator: ",")) has no bucket \(ClusterConfig.nodeBucket); run `touchlog cluster init` again"
            )
        }
        self.nodes = nodes
        self.dataDirectory = dataDirectory
        self.name = Self.sanitized(name ?? Self.defaultName())
        self.report = report
        try Self.claimDirectory(dataDirectory, config: config)
    }

    /// `hostname-pid`, the default node name.
    static func defaultName() -> String {
        let host = Platform.hostName
        return "\(host.isEmpty ? "node" : host)-\(Platform.processID)"
    }

    /// A name usable in consumer names and keys: letters, digits, `-` and `_`.
    static func sanitized(_ name: String) -> String {
        let bytes = name.utf8.map { b -> UInt8 in
            (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A) || b == 0x2D || b == 0x5F
                ? b : 0x5F
        }
        return String(decoding: bytes.prefix(64), as: UTF8.self)
    }

    /// The data directory records the cluster it serves (`DIR/cluster-id`); one of another cluster is refused, as is a
    /// partition store that records another cluster or partition.
    static func claimDirectory(_ directory: String, config: ClusterConfig) throws(ClusterError) {
        _ = try? SystemFile.makeDirectory(directory)
        let path = directory + "/cluster-id"
        let recorded: [UInt8]?
        do throws(TouchLogError) {
            do throws(TouchLogError) { recorded = try DurableFile.read(path, kind: "cluster-id") } catch
                where error.code == .notFound
            { recorded = nil }
            if recorded == nil { try DurableFile.write(Array(config.id.utf8), kind: "cluster-id", to: path) }
        } catch {
            throw ClusterError(.store(error), error.message)
        }
        if let recorded, String(decoding: recorded, as: UTF8.self) != config.id {
            throw ClusterError(
                .conflict,
                "\(directory) holds the partitions of cluster \(String(decoding: recorded, as: UTF8.self)), not of this cluster "
                    + "(\(config.id)); give the node another --data directory")
        }
        for partition in 0..<config.partitions {
            let store = directory + "/p\(partition)"
            guard SystemFile.exists(store) else { continue }
            guard let opened = try? TouchLogStore(readingFrom: store), let metadata = try? opened.lastCommitMetadata()
            else { continue }
            if let record = AppliedRecord(metadata: metadata),
                record.clusterID != config.id || record.partition != partition
            {
                throw ClusterError(
                    .conflict,
                    "\(store) holds partition \(record.partition) of cluster \(record.clusterID), not partition \(partition) of \(config.id)"
                )
            }
        }
    }

    /// The partitions this node owns now.
    public var ownedPartitions: [Int] { state.withLock { $0.owned.keys.sorted() } }

    /// Starts the lease rounds, on a thread of their own (a round waits on NATS, which must not hold a thread of the
    /// pools queries run on): each renews what the node owns, claims free partitions up to its share, and gives one
    /// back when it has held more than its share for two rounds running (so partitions spread as nodes join). After
    /// ``stop()``, the last round releases every lease.
    public func start() {
        let round = Int(max(50, config.leaseMilliseconds / 3))
        SystemThread.detached {
            while !self.state.withLock({ $0.stopping }) {
                self.leaseRound()
                var slept = 0
                while slept < round && !self.state.withLock({ $0.stopping }) {
                    Platform.sleep(milliseconds: min(50, round - slept))
                    slept += min(50, round - slept)
                }
            }
            self.releaseAll()
            for waiter in self.state.withLock({ state in
                state.stopped = true
                defer { state.waiters.removeAll() }
                return state.waiters
            }) { waiter() }
        }
    }

    /// ``start()``, then returns once ``stop()`` has released everything.
    public func run() async {
        start()
        await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
            let stopped = state.withLock { state in
                if !state.stopped { state.waiters.append { done.resume() } }
                return state.stopped
            }
            if stopped { done.resume() }
        }
    }

    /// Blocks until ``stop()`` has released everything (for callers on threads of their own).
    public func waitUntilStopped() {
        let semaphore = DispatchSemaphore(value: 0)
        let stopped = state.withLock { state in
            if !state.stopped { state.waiters.append { semaphore.signal() } }
            return state.stopped
        }
        if !stopped { semaphore.wait() }
    }

    /// Stops claiming, releases every lease (so other nodes take over at once) and closes the local stores.
    public func stop() {
        state.withLock { $0.stopping = true }
    }

    private func leaseRound() {
        do throws(NATSError) {
            try nodes.put(name, Array(String(Timestamp.now()).utf8))
            // Nodes seen within a lease period (from the bucket's stream: listing keys would take a watcher per round).
            let live = max(1, try nats.streamState("KV_" + ClusterConfig.nodeBucket)?.subjects ?? 1)
            let share = (config.partitions + live - 1) / live
            try renewLeases()
            var held = state.withLock { $0.owned.count }
            if held < share {
                let start = ClusterConfig.partition(of: name.utf8, partitions: config.partitions)
                for k in 0..<config.partitions where held < share {
                    let partition = (start + k) % config.partitions
                    // Taking partitions over can take seconds each: the leases already held are renewed in between.
                    if ContinuousClock.now - state.withLock({ $0.renewed })
                        > .milliseconds(config.leaseMilliseconds / 4)
                    {
                        try renewLeases()
                    }
                    guard !state.withLock({ $0.stopping || $0.owned[partition] != nil }),
                        try leases.get(ClusterConfig.leaseKey(partition)) == nil
                    else { continue }
                    guard let revision = try leases.create(ClusterConfig.leaseKey(partition), leaseValue) else {
                        continue
                    }
                    do throws(ClusterError) {
                        try takeOver(partition, leaseRevision: revision)
                        held += 1
                    } catch {
                        report("cannot serve partition \(partition): \(error.message)")
                        try? leases.delete(ClusterConfig.leaseKey(partition))
                    }
                }
            }
            let over = state.withLock { state -> Bool in
                state.roundsOverShare = state.owned.count > share ? state.roundsOverShare + 1 : 0
                return state.roundsOverShare >= 2
            }
            if over, let partition = state.withLock({ $0.owned.keys.max() }) {
                report("gave back partition \(partition) (holding more than a share of \(share))")
                drop(partition, releaseLease: true)
                state.withLock { $0.roundsOverShare = 0 }
            }
        } catch {
            report("lease round failed: \(error.message)")
        }
    }

    /// Renews every lease held. A lease whose revision changed is lost (it lapsed and another node claimed it), unless
    /// the change is this node's own renewal whose answer did not arrive (a timeout while JetStream elected leaders).
    private func renewLeases() throws(NATSError) {
        for (partition, owned) in state.withLock({ $0.owned }) {
            let key = ClusterConfig.leaseKey(partition)
            if let revision = try leases.update(key, leaseValue, last: owned.leaseRevision) {
                owned.leaseRevision = revision
            } else if let entry = try leases.get(key), ClusterRequest.decode(entry.value)?["node"]?.string == name,
                let revision = try leases.update(key, leaseValue, last: entry.revision)
            {
                owned.leaseRevision = revision
            } else {
                report("lost the lease of partition \(partition); stopped serving it")
                drop(partition, releaseLease: false)
            }
        }
        state.withLock { $0.renewed = ContinuousClock.now }
    }

    private var leaseValue: [UInt8] { Array("{\"node\":\"\(name)\",\"since\":\(Timestamp.now())}".utf8) }

    private func takeOver(_ partition: Int, leaseRevision: UInt64) throws(ClusterError) {
        let owned = try OwnedPartition(partition, node: self, leaseRevision: leaseRevision)
        state.withLock { $0.owned[partition] = owned }
        owned.start()
        report("serving partition \(partition) from stream sequence \(owned.applied.withLock { $0.sequence } + 1)")
    }

    func drop(_ partition: Int, releaseLease: Bool) {
        guard let owned = state.withLock({ $0.owned.removeValue(forKey: partition) }) else { return }
        owned.stop()
        if releaseLease { try? leases.delete(ClusterConfig.leaseKey(partition)) }
    }

    private func releaseAll() {
        for partition in state.withLock({ Array($0.owned.keys) }) { drop(partition, releaseLease: true) }
        try? nodes.delete(name)
        try? nats.flush(timeout: .seconds(2))
    }
}

/// A partition this node owns: its store, the stream consumer that feeds it, and the subscription answering requests.
final class OwnedPartition: @unchecked Sendable {
    // Unchecked: the store, consumer and subscription are thread-safe; `leaseRevision` is touched by lease rounds only.
    let index: Int
    let store: TouchLogStore
    let node: ClusterNode
    var leaseRevision: UInt64
    let applied: Mutex<(sequence: UInt64, digest: [UInt8])>
    private let stopped = Atomic<Bool>(false)
    private let consumer: NATSPullConsumer
    private let requests: NATSSubscription
    private let threads = Mutex<[SystemThread]>([])

    init(_ index: Int, node: ClusterNode, leaseRevision: UInt64) throws(ClusterError) {
        self.index = index
        self.node = node
        self.leaseRevision = leaseRevision
        let directory = node.dataDirectory + "/p\(index)"
        do throws(TouchLogError) {
            store = try TouchLogStore(directory: directory)
            if let metadata = try store.lastCommitMetadata(), let record = AppliedRecord(metadata: metadata) {
                guard record.clusterID == node.config.id, record.partition == index else {
                    throw TouchLogError(
                        code: .invalidArgument,
                        message: "\(directory) holds partition \(record.partition) of cluster \(record.clusterID)")
                }
                applied = Mutex((record.sequence, record.digest))
            } else {
                applied = Mutex((0, AppliedRecord.zeroDigest))
            }
        } catch {
            throw ClusterError(.store(error), error.message)
        }
        let next = applied.withLock { $0.sequence } + 1
        do throws(NATSError) {
            consumer = try node.nats.pullConsumer(
                stream: ClusterConfig.stream(index), durable: "touchlog-\(node.name)-p\(index)",
                startSequence: next, ackWait: .seconds(30))
            requests = try node.nats.subscribe(node.config.requestSubject(index), queue: ClusterConfig.ownerQueue)
            try node.nats.flush()
        } catch {
            store.close()
            throw ClusterError(error)
        }
    }

    /// Starts the loops that apply the stream and take requests, each on a thread of its own (both wait on NATS).
    func start() {
        threads.withLock { $0 = [SystemThread.start { self.applyLoop() }, SystemThread.start { self.requestLoop() }] }
    }

    /// Stops applying and answering, waits for both loops, and closes the store.
    func stop() {
        stopped.store(true, ordering: .sequentiallyConsistent)
        requests.unsubscribe()
        for thread in threads.withLock({ $0 }) where !thread.isCurrent {
            thread.join()
        }
        consumer.unsubscribe()
        node.nats.deleteConsumer(stream: ClusterConfig.stream(index), durable: "touchlog-\(node.name)-p\(index)")
        store.close()
    }

    var isStopped: Bool { stopped.load(ordering: .sequentiallyConsistent) }

    private func applyLoop() {
        while !isStopped {
            let messages: [NATSMessage]
            do throws(NATSError) {
                messages = try consumer.fetch(batch: 256, timeout: .milliseconds(200))
            } catch {
                if !isStopped { node.report("partition \(index): \(error.message)") }
                Platform.sleep(milliseconds: 200)
                continue
            }
            for message in messages where !isStopped {
                do throws(ClusterError) {
                    try apply(message)
                } catch {
                    // The store refused the commit (a full disk, a damaged log): stop serving the partition and give
                    // the lease back, so a healthy node takes it over rather than this one answering from a stale store.
                    node.report("partition \(index): cannot apply a message, giving the partition up: \(error.message)")
                    stopped.store(true, ordering: .sequentiallyConsistent)
                    SystemThread.detached { self.node.drop(self.index, releaseLease: true) }
                    return
                }
            }
        }
    }

    /// Applies one stream message as one commit, then acknowledges it. A message at or before the applied sequence (a
    /// redelivery) is only acknowledged.
    func apply(_ message: NATSMessage) throws(ClusterError) {
        let position: (sequence: UInt64, timestamp: Int64)
        do throws(NATSError) { position = try message.jetStreamPosition() } catch { throw ClusterError(error) }
        let (last, digest) = applied.withLock { $0 }
        guard position.sequence > last else {
            try? message.acknowledge()
            return
        }
        let payload = message.data
        let isErasure = message.subject.hasSuffix(".erase")
        let next = AppliedRecord.chain(
            digest, sequence: position.sequence, recorded: position.timestamp, kind: isErasure ? 1 : 0, payload: payload
        )
        let record = AppliedRecord(
            clusterID: node.config.id, partition: index, sequence: position.sequence, digest: next)
        do throws(TouchLogError) {
            var batch = EventBatch()
            if isErasure {
                if let request = ClusterRequest.decode(payload), case .array(let items)? = request["profiles"] {
                    let profiles = items.compactMap(\.string)
                    if !profiles.isEmpty {
                        try store.eraseApplied(
                            profiles: profiles, reason: request["reason"]?.string ?? "", recorded: position.timestamp)
                    }
                } else {
                    node.report(
                        "partition \(index): sequence \(position.sequence) is not an erasure touchlog wrote; recorded as applied, nothing erased"
                    )
                }
            } else {
                do throws(TouchLogError) { batch = try EventBatch.parse(payload) } catch {
                    node.report(
                        "partition \(index): sequence \(position.sequence) holds events touchlog cannot read (\(error.message)); recorded as applied, nothing appended"
                    )
                }
            }
            try store.appendApplied(batch, recorded: position.timestamp, metadata: record.encoded)
        } catch {
            throw ClusterError(.store(error), error.message)
        }
        applied.withLock { $0 = (position.sequence, next) }
        try? message.acknowledge()
    }

    /// Waits until the partition has applied `sequence` (false when `deadline` passed first or it stopped).
    func waitApplied(_ sequence: UInt64, deadline: ContinuousClock.Instant) -> Bool {
        while applied.withLock({ $0.sequence }) < sequence {
            if isStopped || ContinuousClock.now >= deadline { return false }
            Platform.sleep(milliseconds: 2)
        }
        return true
    }

    private func requestLoop() {
        while !isStopped {
            guard let message = try? requests.next(timeout: .milliseconds(200)) else { continue }
            guard let reply = message.reply else { continue }
            let request = message.data
            // Answered on a thread of its own, so a long query does not hold up the next request.
            SystemThread.detached {
                for chunk in self.answer(request) { try? self.node.nats.publish(reply, chunk) }
                try? self.node.nats.flush()
            }
        }
    }

    /// Answers one request (see ``ClusterRequest``) with reply chunks.
    func answer(_ bytes: [UInt8]) -> [[UInt8]] {
        do throws(TouchLogError) {
            guard let request = ClusterRequest.decode(bytes), let op = request["op"]?.string else {
                throw TouchLogError(code: .invalidArgument, message: "a request touchlog cannot read")
            }
            // Every event whose append returned before the request was sent is applied before answering.
            if request["sync"] != nil && request["sync"] != .bool(false) {
                let deadline = ContinuousClock.now + .milliseconds(request["timeoutMs"]?.integer ?? 10_000)
                let last: UInt64
                do throws(NATSError) {
                    last = try node.nats.streamState(ClusterConfig.stream(index))?.lastSequence ?? 0
                } catch {
                    throw TouchLogError(code: .io, message: error.message)
                }
                guard waitApplied(last, deadline: deadline) else {
                    throw TouchLogError(
                        code: .io,
                        message: "partition \(index) did not catch up with its stream (sequence \(last)) in time")
                }
            }
            return ClusterReply.chunks(try perform(op, request))
        } catch {
            return ClusterReply.chunks([], error: error)
        }
    }

    /// A request's definition, checked as a put would check it.
    private static func definition(_ json: JSONValue) throws(TouchLogError) -> SegmentDefinition {
        do { return try SegmentDefinition(value: json) } catch {
            throw TouchLogError(code: .invalidInput, message: "\(error)")
        }
    }

    private func perform(_ op: String, _ request: JSONValue) throws(TouchLogError) -> [UInt8] {
        var out: [UInt8] = []
        switch op {
        case "members", "count":
            guard let definitionJSON = request["definition"], let time = ClusterRequest.time(from: request) else {
                throw TouchLogError(code: .invalidArgument, message: "a query needs a definition and a time")
            }
            let definition = try Self.definition(definitionJSON)
            // Kept as a local segment too, so that the partition store can be asked by name (`touchlog query --store`).
            try store.putSegmentNow(definition)
            try store.withReader { reader throws(TouchLogError) in
                do {
                    if op == "count" {
                        out += Array("{\"count\":\(try reader.count(of: definition, at: time))}\n".utf8)
                    } else {
                        for member in try reader.members(of: definition, at: time) {
                            EventJSON.appendString(member, to: &out)
                            out.append(0x0A)
                        }
                    }
                } catch let error as TouchLogError {
                    throw error
                } catch {
                    throw TouchLogError(code: .io, message: "\(error)")
                }
            }
        case "history":
            guard let definitionJSON = request["definition"], let from = request["from"]?.integer,
                let to = request["to"]?.integer,
                let step = request["step"]?.integer
            else {
                throw TouchLogError(code: .invalidArgument, message: "a history needs a definition, from, to and step")
            }
            let definition = try Self.definition(definitionJSON)
            let history = try store.withReader { reader throws(TouchLogError) in
                do {
                    return try reader.history(
                        of: definition, from: from, to: to, step: step, knownAt: request["knownAt"]?.integer)
                } catch {
                    throw error as? TouchLogError ?? TouchLogError(code: .io, message: "\(error)")
                }
            }
            out +=
                Array(
                    JSONValue.object([("counts", .array(history.points.map { .number(String($0.count)) }))]).text.utf8)
                + [0x0A]
        case "explain":
            guard let definitionJSON = request["definition"], let time = ClusterRequest.time(from: request),
                let profile = request["profile"]?.string,
                let version = request["version"]?.string
            else {
                throw TouchLogError(
                    code: .invalidArgument, message: "explain needs a definition, a profile, a version and a time")
            }
            let definition = try Self.definition(definitionJSON)
            let explanation = try store.withReader { reader throws(TouchLogError) in
                do { return try reader.explain(definition, profile: profile, at: time) } catch {
                    throw error as? TouchLogError ?? TouchLogError(code: .io, message: "\(error)")
                }
            }
            out += Array(explanation.report(segment: definition.name, version: version, definition: definition).utf8)
        case "replay":
            var filter = ReplayFilter(since: request["since"]?.integer, until: request["until"]?.integer)
            if case .array(let items)? = request["profiles"] { filter.profiles = items.compactMap(\.string) }
            if case .array(let items)? = request["touchpoints"] { filter.touchpoints = items.compactMap(\.string) }
            if case .array(let items)? = request["types"] {
                filter.types = Set(items.compactMap { $0.string.flatMap(EventType.init(name:)) })
            }
            filter.includeErased = request["includeErased"] == .bool(true)
            filter.knownAt = request["knownAt"]?.integer
            try store.withReader { reader throws(TouchLogError) in
                do {
                    try reader.forEachBlock(matching: filter) { block in
                        for index in filter.matches(in: block) { EventJSON.appendLine(block, index, to: &out) }
                    }
                } catch {
                    throw error as? TouchLogError ?? TouchLogError(code: .io, message: "\(error)")
                }
            }
        case "holds":
            guard case .array(let items)? = request["profiles"] else {
                throw TouchLogError(code: .invalidArgument, message: "holds needs profiles")
            }
            let profiles = items.compactMap(\.string)
            for (profile, held) in zip(profiles, try store.holds(profiles: profiles)) where held {
                EventJSON.appendString(profile, to: &out)
                out.append(0x0A)
            }
        case "status", "stats":
            // What was applied costs nothing to tell; profiles and bytes (`stats`) read every block's summary.
            let (sequence, digest) = applied.withLock { $0 }
            var fields: [(key: String, value: JSONValue)] = [
                ("partition", .number(String(index))), ("node", .string(node.name)),
                ("applied", .number(String(sequence))),
                ("digest", .string(digest.hex)), ("head", .string(try store.headHash().description)),
                ("events", .number(String(store.endOffset))),
            ]
            if op == "stats" {
                let stats = try store.withReader { reader throws(TouchLogError) in
                    do { return try reader.stats() } catch {
                        throw error as? TouchLogError ?? TouchLogError(code: .io, message: "\(error)")
                    }
                }
                fields += [
                    ("profiles", .number(String(stats.profiles))),
                    ("erasedProfiles", .number(String(stats.erasedProfiles))),
                    ("bytes", .number(String(stats.totalBytes))),
                ]
            }
            out += Array(JSONValue.object(fields).text.utf8)
        case "verify":
            let report = try StoreVerifier.verify(directory: store.directory)
            let problems = report.log.problems.map(\.description) + report.otherProblems
            out += Array(
                JSONValue.object([
                    ("ok", .bool(report.isIntact)),
                    ("summary", .string(problems.isEmpty ? "ok" : problems.joined(separator: "; "))),
                ]).text.utf8)
        default:
            throw TouchLogError(code: .invalidArgument, message: "unknown request \"\(op)\"")
        }
        return out
    }
}

func wrap<T>(_ body: () throws(NATSError) -> T) throws(ClusterError) -> T {
    do { return try body() } catch { throw ClusterError(error) }
}
