import Synchronization
import TouchLog
import TouchLogStorage

/// What the store commands do against a cluster: publish events to the partition streams, keep segment definitions in
/// the cluster's bucket, and ask partition owners (scatter) and combine their answers (gather).
public final class ClusterClient: Sendable {
    public let nats: NATSConnection
    public let config: ClusterConfig
    let leases: NATSKeyValue
    let segmentBucket: NATSKeyValue

    /// Connects and reads the cluster's settings; fails with ``ClusterError/Kind/notInitialised`` when `cluster init`
    /// has not been run on this NATS system.
    public init(urls: [String], name: String = "touchlog") throws(ClusterError) {
        let nats = try wrap { () throws(NATSError) in try NATSConnection(urls: urls, name: name) }
        let address = urls.joined(separator: ",")
        guard
            let configBucket = try retryingTimeouts({ () throws(NATSError) in
                try nats.keyValue(ClusterConfig.configBucket)
            }),
            let entry = try retryingTimeouts({ () throws(NATSError) in try configBucket.get("config") })
        else {
            throw ClusterError(
                .notInitialised,
                "no touchlog cluster at \(address): run `touchlog cluster init --nats \(address) --partitions P` first")
        }
        let config = try ClusterConfig(json: entry.value)
        guard
            let leases = try retryingTimeouts({ () throws(NATSError) in try nats.keyValue(ClusterConfig.leaseBucket) }),
            let segments = try retryingTimeouts({ () throws(NATSError) in
                try nats.keyValue(ClusterConfig.segmentBucket)
            })
        else {
            throw ClusterError(
                .notInitialised,
                "the touchlog cluster at \(address) is missing its buckets: run `touchlog cluster init` again")
        }
        self.nats = nats
        self.config = config
        self.leases = leases
        self.segmentBucket = segments
    }

    // MARK: Setting up

    /// Creates the cluster: a stream per partition and the buckets, then the settings (the commit point, so an
    /// interrupted init is finished by running it again). On a cluster that exists with the same partition count it
    /// only creates what is missing; with another count it fails, changing nothing.
    @discardableResult
    public static func initialise(urls: [String], partitions: Int, replicas: Int = 1, leaseMilliseconds: Int64 = 10_000)
        throws(ClusterError) -> (config: ClusterConfig, created: Bool)
    {
        guard (1...4096).contains(partitions) else {
            throw ClusterError(.conflict, "--partitions must be 1 to 4096, not \(partitions)")
        }
        guard (1...5).contains(replicas) else {
            throw ClusterError(.conflict, "--replicas must be 1 to 5 (JetStream's limit), not \(replicas)")
        }
        let nats = try wrap { () throws(NATSError) in try NATSConnection(urls: urls, name: "touchlog-init") }
        defer { nats.close() }
        return try wrap { () throws(NATSError) -> (config: ClusterConfig, created: Bool) in
            let configBucket = try nats.createKeyValue(ClusterConfig.configBucket, history: 1, replicas: replicas)
            var config = ClusterConfig(
                id: randomID(), partitions: partitions, replicas: replicas, leaseMilliseconds: leaseMilliseconds)
            var created = true
            if let existing = try configBucket.get("config") {
                let found: ClusterConfig
                do throws(ClusterError) { found = try ClusterConfig(json: existing.value) } catch {
                    throw NATSError(message: error.message)
                }
                guard found.partitions == partitions else {
                    throw NATSError(
                        message:
                            "the cluster at \(urls.joined(separator: ",")) has \(found.partitions) partitions, not \(partitions); "
                            + "a cluster keeps its partition count for life (nothing changed)")
                }
                config = found
                created = false
            }
            for partition in 0..<partitions where try nats.streamState(ClusterConfig.stream(partition)) == nil {
                try nats.addStream(
                    name: ClusterConfig.stream(partition),
                    subjects: [ClusterConfig.eventSubject(partition), ClusterConfig.eraseSubject(partition)],
                    replicas: config.replicas, maxMessageBytes: Int32(ClusterConfig.maxMessageBytes * 2))
            }
            _ = try nats.createKeyValue(
                ClusterConfig.leaseBucket, history: 1, ttl: .milliseconds(config.leaseMilliseconds),
                replicas: config.replicas)
            _ = try nats.createKeyValue(
                ClusterConfig.nodeBucket, history: 1, ttl: .milliseconds(config.leaseMilliseconds),
                replicas: config.replicas)
            _ = try nats.createKeyValue(ClusterConfig.segmentBucket, history: 64, replicas: config.replicas)
            if created, try configBucket.create("config", config.json) == nil {
                // Another init won the race: its settings stand if they agree.
                guard let winner = try configBucket.get("config") else {
                    throw NATSError(message: "the cluster settings vanished during init")
                }
                let found: ClusterConfig
                do throws(ClusterError) { found = try ClusterConfig(json: winner.value) } catch {
                    throw NATSError(message: error.message)
                }
                guard found.partitions == partitions else {
                    throw NATSError(message: "another init created the cluster with \(found.partitions) partitions")
                }
                return (found, false)
            }
            return (config, created)
        }
    }

    static func randomID() -> String {
        var bytes: [UInt8] = []
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<16 { bytes.append(UInt8.random(in: 0...255, using: &generator)) }
        return bytes.hex
    }

    // MARK: Appending

    /// Publishes every event of `batch` to its partition's stream and returns once JetStream has acknowledged all of
    /// them. Each message is applied atomically by its partition's owner; a failure part way leaves the messages
    /// acknowledged so far in the streams (the error says how many messages were not).
    @discardableResult
    public func append(_ batch: EventBatch) throws(ClusterError) -> Int {
        var buffers = [[UInt8]](repeating: [], count: config.partitions)
        var pending: [(partition: Int, payload: [UInt8])] = []
        for i in 0..<batch.count {
            let partition = ClusterConfig.partition(of: batch.profileBytes(at: i), partitions: config.partitions)
            EventJSON.appendInputLine(batch, i, to: &buffers[partition])
            if buffers[partition].count >= ClusterConfig.maxMessageBytes {
                pending.append((partition, buffers[partition]))
                buffers[partition] = []
            }
        }
        for partition in 0..<config.partitions where !buffers[partition].isEmpty {
            pending.append((partition, buffers[partition]))
        }
        // Many messages in flight at once (JetStream keeps each stream's order); the call returns once all are acknowledged.
        do throws(NATSError) {
            try nats.publishDurably(pending.map { (ClusterConfig.eventSubject($0.partition), $0.payload) })
        } catch {
            throw ClusterError(.unavailable, "\(error.message); the events of the other messages are in the streams")
        }
        return batch.count
    }

    /// Parses JSON Lines or CSV and publishes it; an invalid line publishes nothing (the error names every line).
    @discardableResult
    public func append(contentsOf input: [UInt8], source: String? = nil) throws(ClusterError) -> Int {
        let batch: EventBatch
        do { batch = try EventBatch.parse(input, source: source) } catch {
            throw ClusterError(.store(error), error.message)
        }
        return try append(batch)
    }

    // MARK: Segments

    /// Saves a definition for every node; returns its revision in the bucket (the cluster's version of it).
    @discardableResult
    public func putSegment(_ definition: SegmentDefinition) throws(ClusterError) -> UInt64 {
        let name = definition.name
        guard !name.hasPrefix("."), !name.hasSuffix("."), !name.contains("..") else {
            throw ClusterError(
                .store(TouchLogError(code: .invalidArgument, message: "")),
                "a cluster's segment name cannot begin or end with \".\" or hold \"..\" (NATS keys cannot), as \"\(name)\" does"
            )
        }
        // With every other segment as it is now: refuses missing segments, cycles and deep chains.
        var fresh = definition
        fresh.referenced = [:]
        _ = try resolve(fresh)
        return try wrap { () throws(NATSError) in try segmentBucket.put(name, Array(definition.json.utf8)) }
    }

    /// `definition` with the segments it refers to resolved to their current definitions in the cluster (those it
    /// already holds are kept); fails, naming the rule, on a missing segment, a cycle or a chain too deep.
    public func resolve(_ definition: SegmentDefinition) throws(ClusterError) -> SegmentDefinition {
        guard !definition.references.isEmpty else { return definition }
        var failure: ClusterError?
        do throws(TouchLogError) {
            return try definition.resolving { name throws(TouchLogError) in
                do throws(ClusterError) { return try stored(name)?.definition } catch {
                    failure = error
                    throw TouchLogError(code: .io, message: error.message)
                }
            }
        } catch {
            throw failure ?? ClusterError(.store(error), error.message)
        }
    }

    /// What a query sends the nodes: `definition` with its references resolved and compiled in place, so that a node
    /// needs no other definition.
    func prepared(_ definition: SegmentDefinition) throws(ClusterError) -> JSONValue {
        try resolve(definition).expanded.encoded()
    }

    /// The current definition of a segment, its references resolved.
    public func segment(_ name: String) throws(ClusterError) -> (revision: UInt64, definition: SegmentDefinition) {
        guard let (revision, definition) = try stored(name) else {
            throw ClusterError(
                .store(TouchLogError(code: .notFound, message: "")),
                "no segment named \"\(name)\" in the cluster (see `touchlog segment list --nats …`)")
        }
        return (revision, try resolve(definition))
    }

    /// The current definition of a segment as stored (nil: none).
    private func stored(_ name: String) throws(ClusterError) -> (revision: UInt64, definition: SegmentDefinition)? {
        guard SegmentDefinition.isValidName(name),
            let entry = try wrap({ () throws(NATSError) in try segmentBucket.get(name) })
        else { return nil }
        do {
            return (entry.revision, try SegmentDefinition(json: String(decoding: entry.value, as: UTF8.self)))
        } catch {
            throw ClusterError(.corrupt, "the cluster's definition of \"\(name)\" is not valid: \(error)")
        }
    }

    /// Every segment, by name.
    public func segments() throws(ClusterError) -> [(name: String, revision: UInt64, definition: SegmentDefinition)] {
        try wrap { () throws(NATSError) in try segmentBucket.keys() }.sorted().map { name throws(ClusterError) in
            let (revision, definition) = try segment(name)
            return (name, revision, definition)
        }
    }

    public func removeSegment(_ name: String) throws(ClusterError) {
        _ = try segment(name)
        let referrers = try segments().filter { $0.name != name && $0.definition.referencedNames.contains(name) }.map(
            \.name)
        guard referrers.isEmpty else {
            throw ClusterError(
                .store(TouchLogError(code: .conflict, message: "")),
                "segment \"\(name)\" is referred to by "
                    + referrers.map { "\"\($0)\"" }.joined(separator: ", ")
                    + ": change or remove \(referrers.count == 1 ? "it" : "them") first")
        }
        try wrap { () throws(NATSError) in try segmentBucket.delete(name) }
    }

    // MARK: Scatter and gather

    /// The owner of each partition that has one (from the lease bucket).
    public func owners() throws(ClusterError) -> [Int: String] {
        var owners: [Int: String] = [:]
        for partition in 0..<config.partitions {
            if let entry = try wrap({ () throws(NATSError) in try leases.get(ClusterConfig.leaseKey(partition)) }),
                let node = ClusterRequest.decode(entry.value)?["node"]?.string
            {
                owners[partition] = node
            }
        }
        return owners
    }

    /// Sends `fields` to the owner of each of `partitions` and gathers the reply bodies within `timeout`. A partition
    /// without an owner, or whose owner is not running, is asked again for up to a lease round when `sync` (a
    /// handover takes that long); one still missing then, or whose owner did not answer in time, fails the request naming it, unless
    /// `allowPartial` (then it is listed in `missing`).
    func scatter(
        _ fields: [(key: String, value: JSONValue)], partitions: [Int]? = nil, timeout: Duration, allowPartial: Bool,
        sync: Bool = true
    ) throws(ClusterError) -> (bodies: [Int: [UInt8]], missing: [Int]) {
        let partitions = partitions ?? Array(0..<config.partitions)
        var fields = fields
        if sync { fields += [("sync", .bool(true)), ("timeoutMs", .number(String(milliseconds(timeout))))] }
        let request = ClusterRequest.encode(fields)
        let inbox = nats.newInbox()
        let subscription = try wrap { () throws(NATSError) in try nats.subscribe(inbox + ".*.*") }
        defer { subscription.unsubscribe() }
        let deadline = ContinuousClock.now + timeout
        // A look at the cluster as it is (`sync` false: status) is not asked again.
        let retryUntil =
            ContinuousClock.now + (sync ? min(timeout, .milliseconds(config.leaseMilliseconds / 3 + 500)) : .zero)
        var bodies: [Int: [UInt8]] = [:]
        var done = Set<Int>()
        // Which attempt's reply a partition's body is taken from (a slow owner's late reply to an earlier attempt is
        // ignored once another attempt's reply has begun).
        var source: [Int: Int] = [:]
        var owners: [Int: String] = [:]
        var notRunning = false
        var attempt = 0
        while true {
            attempt += 1
            owners = try self.owners()
            let asked = partitions.filter { !done.contains($0) && owners[$0] != nil }
            for partition in asked {
                try wrap { () throws(NATSError) in
                    try nats.publish(
                        config.requestSubject(partition), reply: "\(inbox).\(attempt).\(partition)", request)
                }
            }
            try wrap { () throws(NATSError) in try nats.flush() }
            // A request to a partition whose owner is gone comes back as "no responders", without saying which
            // partition: once every other partition answered, the rest are those.
            var unanswered = 0
            notRunning = false
            while asked.filter({ done.contains($0) }).count + unanswered < asked.count {
                let left = deadline - ContinuousClock.now
                guard left > .zero else { break }
                let received: NATSMessage?
                do throws(NATSError) { received = try subscription.next(timeout: left) } catch {
                    if error.isNoResponders {
                        unanswered += 1
                        continue
                    }
                    throw ClusterError(error)
                }
                guard let message = received else { break }
                let parts = message.subject.split(separator: ".")
                guard parts.count >= 2, let partition = Int(parts[parts.count - 1]),
                    let from = Int(parts[parts.count - 2]),
                    !done.contains(partition), let reply = ClusterReply.parse(message.data)
                else { continue }
                if source[partition] == nil && reply.chunk == 0 { source[partition] = from }
                guard source[partition] == from else { continue }
                if let error = reply.error {
                    throw ClusterError(.store(error), "partition \(partition): \(error.message)")
                }
                bodies[partition, default: []] += reply.body
                if reply.last { done.insert(partition) }
            }
            notRunning = unanswered > 0
            let waitingOnSlowOwner = asked.contains { !done.contains($0) } && !notRunning
            if done.count == partitions.count || waitingOnSlowOwner
                || ContinuousClock.now + .milliseconds(200) >= retryUntil
            {
                break
            }
            Platform.sleep(milliseconds: 200)
        }
        let missing = partitions.filter { !done.contains($0) }
        if !missing.isEmpty && !allowPartial {
            let named = missing.map { partition in
                guard let owner = owners[partition] else { return "\(partition) (no owner)" }
                return notRunning
                    ? "\(partition) (its owner \(owner) is not running; another node takes it over when the lease lapses)"
                    : "\(partition) (owner \(owner) did not answer within \(timeout))"
            }
            var error = ClusterError(
                .partitionMissing,
                "partition\(missing.count == 1 ? "" : "s") \(named.joined(separator: ", ")) missing; "
                    + "nothing answered (--allow-partial answers from the rest)")
            error.missing = missing
            throw error
        }
        for partition in missing { bodies[partition] = nil }
        return (bodies, missing)
    }

    /// The members of a segment at `time`, sorted by bytes, and the partitions left out (only with `allowPartial`).
    public func members(
        of definition: SegmentDefinition, at time: QueryTime, timeout: Duration = .seconds(10),
        allowPartial: Bool = false
    ) throws(ClusterError) -> (members: [String], missing: [Int]) {
        let (bodies, missing) = try scatter(
            [("op", .string("members")), ("definition", try prepared(definition))] + ClusterRequest.time(time),
            timeout: timeout, allowPartial: allowPartial)
        var members: [String] = []
        for body in bodies.values { members += try Self.stringLines(body) }
        members.sort { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) }
        return (members, missing)
    }

    /// The member count of a segment at `time`.
    public func count(
        of definition: SegmentDefinition, at time: QueryTime, timeout: Duration = .seconds(10),
        allowPartial: Bool = false
    ) throws(ClusterError) -> (count: Int, missing: [Int]) {
        let (bodies, missing) = try scatter(
            [("op", .string("count")), ("definition", try prepared(definition))] + ClusterRequest.time(time),
            timeout: timeout, allowPartial: allowPartial)
        var total = 0
        for body in bodies.values { total += Int(ClusterRequest.decode(body)?["count"]?.integer ?? 0) }
        return (total, missing)
    }

    /// The member count of a segment at each step from `from` to `to`: each partition's history, added up.
    public func history(
        of definition: SegmentDefinition, from: Int64, to: Int64, step: Int64, knownAt: Int64?,
        timeout: Duration = .seconds(30),
        allowPartial: Bool = false
    ) throws(ClusterError) -> (history: SegmentHistory, missing: [Int]) {
        let times: [Int64]
        do { times = try SegmentHistory.times(from: from, to: to, step: step) } catch {
            throw ClusterError(.store(error), error.message)
        }
        var fields: [(key: String, value: JSONValue)] = [
            ("op", .string("history")), ("definition", try prepared(definition)),
            ("from", .number(String(from))), ("to", .number(String(to))), ("step", .number(String(step))),
        ]
        if let knownAt { fields.append(("knownAt", .number(String(knownAt)))) }
        let (bodies, missing) = try scatter(fields, timeout: timeout, allowPartial: allowPartial)
        var history = SegmentHistory(
            from: from, to: to, step: step, knownAt: knownAt,
            points: times.map { SegmentHistory.Point(time: $0, count: 0) })
        for body in bodies.values {
            guard case .array(let counts)? = ClusterRequest.decode(body)?["counts"] else {
                throw ClusterError(.corrupt, "a node's history reply has no counts")
            }
            guard counts.count == times.count else {
                throw ClusterError(.corrupt, "a node's history has \(counts.count) points, not \(times.count)")
            }
            for (i, count) in counts.enumerated() { history.points[i].count += Int(count.integer ?? 0) }
        }
        return (history, missing)
    }

    /// Why `profile` is or is not a member of a segment at `time`, as `touchlog explain` prints it; asked of the
    /// owner of the profile's partition (the event offsets it names are that partition store's).
    public func explain(
        _ definition: SegmentDefinition, revision: UInt64, profile: String, at time: QueryTime,
        timeout: Duration = .seconds(10)
    ) throws(ClusterError) -> String {
        let partition = config.partition(of: profile)
        let (bodies, _) = try scatter(
            [
                ("op", .string("explain")), ("definition", try prepared(definition)), ("profile", .string(profile)),
                ("version", .string("revision \(revision); offsets in partition \(partition)")),
            ] + ClusterRequest.time(time),
            partitions: [partition], timeout: timeout, allowPartial: false)
        return String(decoding: bodies[partition] ?? [], as: UTF8.self)
    }

    /// The events matching `filter` from every partition as `replay` prints them (JSON Lines; `offset` is the offset in
    /// the event's partition store), merged by recorded time. Offset bounds are per store, so a filter may not have them.
    public func replay(_ filter: ReplayFilter, timeout: Duration = .seconds(60), allowPartial: Bool = false)
        throws(ClusterError) -> (lines: [UInt8], missing: [Int])
    {
        var fields: [(key: String, value: JSONValue)] = [("op", .string("replay"))]
        if let since = filter.since { fields.append(("since", .number(String(since)))) }
        if let until = filter.until { fields.append(("until", .number(String(until)))) }
        if !filter.profiles.isEmpty { fields.append(("profiles", .array(filter.profiles.map { .string($0) }))) }
        if !filter.touchpoints.isEmpty {
            fields.append(("touchpoints", .array(filter.touchpoints.map { .string($0) })))
        }
        if !filter.types.isEmpty {
            fields.append(("types", .array(filter.types.map { .string($0.name) }.sorted { $0.text < $1.text })))
        }
        if filter.includeErased { fields.append(("includeErased", .bool(true))) }
        if let knownAt = filter.knownAt { fields.append(("knownAt", .number(String(knownAt)))) }
        // Only the partitions that can hold the profiles asked for.
        let partitions = filter.profiles.isEmpty ? nil : Array(Set(filter.profiles.map(config.partition(of:)))).sorted()
        let (bodies, missing) = try scatter(
            fields, partitions: partitions, timeout: timeout, allowPartial: allowPartial)
        // Each partition's lines are in its log order, so in recorded order: a merge keeps that across partitions.
        var queues = bodies.keys.sorted().map { bodies[$0]!.split(separator: 0x0A)[...] }
        var out: [UInt8] = []
        while true {
            var best: Int?
            for (k, queue) in queues.enumerated() {
                guard let line = queue.first else { continue }
                if let b = best,
                    Self.recorded(of: queues[b].first!).lexicographicallyPrecedes(Self.recorded(of: line))
                        || Self.recorded(of: queues[b].first!) == Self.recorded(of: line)
                {
                    continue
                }
                best = k
            }
            guard let b = best else { break }
            out += queues[b].removeFirst()
            out.append(0x0A)
        }
        return (out, missing)
    }

    /// The `recorded` field of a replay line (RFC 3339 with milliseconds, UTC: its bytes sort as its times do).
    private static func recorded(of line: ArraySlice<UInt8>) -> ArraySlice<UInt8> {
        let key = Array(#""recorded":""#.utf8)
        guard let start = line.firstRange(of: key)?.upperBound, let end = line[start...].firstIndex(of: 0x22) else {
            return []
        }
        return line[start..<end]
    }

    static func stringLines(_ body: [UInt8]) throws(ClusterError) -> [String] {
        var out: [String] = []
        for line in body.split(separator: 0x0A) {
            guard let value = try? JSONValue.parse(String(decoding: line, as: UTF8.self)), let string = value.string
            else {
                throw ClusterError(.corrupt, "a partition owner sent a reply touchlog cannot read")
            }
            out.append(string)
        }
        return out
    }

    // MARK: Erasure

    /// Erases profiles everywhere: each erasure is published to its partition's stream, so every replica (and every
    /// rebuild) applies it, and this returns once the owners have applied it. Unknown profiles fail it, erasing
    /// nothing, unless `skipUnknown`.
    public func erase(
        profiles: [String], reason: String = "", skipUnknown: Bool = false, timeout: Duration = .seconds(10)
    ) throws(ClusterError) -> ErasureReport {
        var seen = Set<String>()
        let wanted = profiles.filter { seen.insert($0).inserted }
        var byPartition: [Int: [String]] = [:]
        for profile in wanted { byPartition[config.partition(of: profile), default: []].append(profile) }
        var held = Set<String>()
        for (partition, list) in byPartition {
            let (bodies, _) = try scatter(
                [("op", .string("holds")), ("profiles", .array(list.map { .string($0) }))], partitions: [partition],
                timeout: timeout, allowPartial: false)
            held.formUnion(try Self.stringLines(bodies[partition] ?? []))
        }
        let report = ErasureReport(
            erased: wanted.filter { held.contains($0) }, unknown: wanted.filter { !held.contains($0) })
        if !report.unknown.isEmpty && !skipUnknown {
            let shown = report.unknown.prefix(10).map { "\"\($0)\"" }.joined(separator: ", ")
            let more = report.unknown.count > 10 ? " and \(report.unknown.count - 10) more" : ""
            throw ClusterError(
                .store(TouchLogError(code: .notFound, message: "")),
                "the cluster holds no profile \(shown)\(more); nothing erased")
        }
        for (partition, list) in byPartition.sorted(by: { $0.key < $1.key }) {
            let erasing = list.filter { held.contains($0) }
            guard !erasing.isEmpty else { continue }
            let payload = ClusterRequest.encode([
                ("profiles", .array(erasing.map { .string($0) })), ("reason", .string(reason)),
            ])
            _ = try wrap { () throws(NATSError) in
                try nats.publishDurably(ClusterConfig.eraseSubject(partition), payload)
            }
        }
        // Wait for the owners to apply it (a request that syncs does).
        _ = try scatter(
            [("op", .string("status"))], partitions: byPartition.keys.sorted(), timeout: timeout, allowPartial: false)
        return report
    }

    // MARK: Status

    /// One partition as `cluster status` shows it.
    public struct PartitionStatus: Sendable {
        public var partition: Int
        public var owner: String?
        public var streamSequence: UInt64
        public var appliedSequence: UInt64?
        public var digest: String?
        public var head: String?
        public var events: UInt64?
        public var leader: String?

        /// A line of `touchlog cluster status --json`: `{"partition","owner","streamSequence","appliedSequence",
        /// "events","digest","head","streamLeader"}`, null where nothing is known (no owner, no answer).
        package func write(to out: inout JSONWriter) {
            out.object {
                $0.field("partition", partition)
                $0.field("owner", owner)
                $0.field("streamSequence", streamSequence)
                $0.field("appliedSequence", appliedSequence)
                $0.field("events", events)
                $0.field("digest", digest)
                $0.field("head", head)
                $0.field("streamLeader", leader)
            }
        }
    }

    /// Every partition: owner, stream vs applied sequence, the applied digest and the local chain head.
    public func status(timeout: Duration = .seconds(5)) throws(ClusterError) -> [PartitionStatus] {
        let (bodies, _) = try scatter([("op", .string("status"))], timeout: timeout, allowPartial: true, sync: false)
        let owners = try owners()
        return try (0..<config.partitions).map { partition throws(ClusterError) in
            let stream = try wrap { () throws(NATSError) in try nats.streamState(ClusterConfig.stream(partition)) }
            let body = bodies[partition].flatMap(ClusterRequest.decode)
            return PartitionStatus(
                partition: partition, owner: owners[partition], streamSequence: stream?.lastSequence ?? 0,
                appliedSequence: body?["applied"]?.integer.map { UInt64($0) }, digest: body?["digest"]?.string,
                head: body?["head"]?.string, events: body?["events"]?.integer.map { UInt64($0) }, leader: stream?.leader
            )
        }
    }

    /// Sums of the partitions' stats: events, profiles, erased profiles and bytes on disk.
    public func stats(timeout: Duration = .seconds(10), allowPartial: Bool = false) throws(ClusterError) -> ClusterStats
    {
        let (bodies, missing) = try scatter([("op", .string("stats"))], timeout: timeout, allowPartial: allowPartial)
        var result = ClusterStats(partitions: config.partitions, missingPartitions: missing)
        for body in bodies.values {
            guard let value = ClusterRequest.decode(body) else { continue }
            result.events += UInt64(value["events"]?.integer ?? 0)
            result.profiles += Int(value["profiles"]?.integer ?? 0)
            result.erasedProfiles += Int(value["erasedProfiles"]?.integer ?? 0)
            result.totalBytes += value["bytes"]?.integer ?? 0
        }
        return result
    }

    /// Each partition's verify report (`ok`, and the store's summary).
    public func verify(timeout: Duration = .seconds(60), allowPartial: Bool = false) throws(ClusterError) -> [(
        partition: Int, ok: Bool, summary: String
    )] {
        let (bodies, _) = try scatter([("op", .string("verify"))], timeout: timeout, allowPartial: allowPartial)
        return bodies.keys.sorted().map { partition in
            let value = ClusterRequest.decode(bodies[partition]!)
            return (partition, value?["ok"] == .bool(true), value?["summary"]?.string ?? "")
        }
    }
}

/// Runs a JetStream request again while it times out, for up to `limit`: right after a NATS server of the cluster
/// died, JetStream answers nothing until it has elected new leaders (a few seconds).
func retryingTimeouts<T>(for limit: Duration = .seconds(8), _ body: () throws(NATSError) -> T) throws(ClusterError) -> T
{
    let deadline = ContinuousClock.now + limit
    while true {
        do { return try body() } catch {
            guard error.isTimeout, ContinuousClock.now < deadline else { throw ClusterError(error) }
        }
    }
}

/// A cluster's figures: the sums of its partitions' stores (each counted once, at its owner).
public struct ClusterStats: Sendable, Equatable {
    public var events: UInt64 = 0
    public var profiles = 0
    public var erasedProfiles = 0
    /// Bytes on disk of the owners' stores.
    public var totalBytes: Int64 = 0
    public var partitions: Int
    /// Partitions without an owner (with `allowPartial`), left out of the sums.
    public var missingPartitions: [Int]

    /// `touchlog stats --nats … --json` and a cluster server's `GET /v1/stats`: `{"events","profiles",
    /// "erasedProfiles","totalBytes","partitions","missingPartitions"}`.
    package func write(to out: inout JSONWriter) {
        out.object {
            $0.field("events", events)
            $0.field("profiles", profiles)
            $0.field("erasedProfiles", erasedProfiles)
            $0.field("totalBytes", Int(totalBytes))
            $0.field("partitions", partitions)
            $0.field("missingPartitions") { $0.array(missingPartitions) { $0.element($1) } }
        }
    }
}
