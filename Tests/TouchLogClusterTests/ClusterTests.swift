import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import Testing
import TouchLogTestSupport

@testable import TouchLog
@testable import TouchLogCluster

/// The stream messages of every partition, in the order a single store would have recorded them.
func streamMessages(_ nats: NATSConnection, partitions: Int) throws -> [(
    timestamp: Int64, partition: Int, sequence: UInt64, erase: Bool, payload: [UInt8]
)] {
    var all: [(timestamp: Int64, partition: Int, sequence: UInt64, erase: Bool, payload: [UInt8])] = []
    for partition in 0..<partitions {
        guard let last = try nats.streamState(ClusterConfig.stream(partition))?.lastSequence, last > 0 else { continue }
        let consumer = try nats.pullConsumer(
            stream: ClusterConfig.stream(partition), durable: "reference-p\(partition)", startSequence: 1,
            ackWait: .seconds(30))
        // Deleted however this ends: a caller that retries after a failure (JetStream electing leaders) must read from
        // the first message again, not from where an earlier attempt's consumer stopped.
        defer {
            consumer.unsubscribe()
            nats.deleteConsumer(stream: ClusterConfig.stream(partition), durable: "reference-p\(partition)")
        }
        var seen: UInt64 = 0
        while seen < last {
            for message in try consumer.fetch(batch: 256, timeout: .seconds(2)) {
                let position = try message.jetStreamPosition()
                all.append(
                    (
                        position.timestamp, partition, position.sequence, message.subject.hasSuffix(".erase"),
                        message.data
                    ))
                seen = position.sequence
                try message.acknowledge()
            }
        }
    }
    return all.sorted { ($0.timestamp, $0.partition, $0.sequence) < ($1.timestamp, $1.partition, $1.sequence) }
}

/// One store holding the same events as the cluster, each message a commit recorded at its JetStream time.
func referenceStore(_ nats: NATSConnection, partitions: Int, directory: String) throws -> TouchLogStore {
    let store = try TouchLogStore(directory: directory, blockEvents: 64)
    for message in try streamMessages(nats, partitions: partitions) {
        if message.erase {
            let request = try #require(ClusterRequest.decode(message.payload))
            guard case .array(let items)? = request["profiles"] else { continue }
            try store.eraseApplied(profiles: items.compactMap(\.string), reason: "", recorded: message.timestamp)
            try store.appendApplied(EventBatch(), recorded: message.timestamp, metadata: [1])
        } else {
            try store.appendApplied(try EventBatch.parse(message.payload), recorded: message.timestamp, metadata: [0])
        }
    }
    return store
}

@Suite(.serialized) struct ClusterTests {
    static let start: Int64 = 1_654_041_600_000  // 2022-06-01T00:00:00Z
    static let span: Int64 = 60 * 86_400_000
    static let touchpoints = [
        "summer-2022-collection", "summer-2022-sale", "discount-notification", "iphone-13", "store-location", "é-vente",
    ]

    static func randomEvents(_ random: inout SplitMix64, count: Int, profiles: [String]) -> [Event] {
        (0..<count).map { _ in
            let roll = random.below(100)
            let type: EventType = roll < 50 ? .view : roll < 85 ? .click : .conversion
            var time = start + Int64(random.below(Int(span)))
            if random.chance(0.6) { time -= (time - start) % 21_600_000 }
            return Event(
                time: time, profile: profiles[random.below(profiles.count)], type: type,
                touchpoint: type == .conversion && random.chance(0.5)
                    ? nil : touchpoints[random.below(touchpoints.count)],
                value: type == .conversion ? Double(random.below(10_000)) / 100 : nil)
        }
    }

    static func randomDefinition(_ random: inout SplitMix64, index: Int) -> SegmentDefinition {
        func rule(_ depth: Int) -> SegmentDefinition.Rule {
            if depth < 2 && random.chance(0.25) {
                return .group(
                    random.chance(0.5) ? .all : .any, (0..<(1 + random.below(3))).map { _ in rule(depth + 1) },
                    negate: random.chance(0.2))
            }
            var interaction = InteractionRule(interaction: [.view, .click, .any, .conversion][random.below(4)])
            if interaction.interaction != .conversion || random.chance(0.5) {
                let touchpoint = touchpoints[random.below(touchpoints.count)]
                interaction.touchpoint =
                    random.chance(0.5)
                    ? .exactly(Array(touchpoint.utf8)) : .startsWith(Array(touchpoint.utf8.prefix(3)))
            }
            switch random.below(3) {
            case 0:
                interaction.timeframe = .last(
                    milliseconds: [86_400_000, 7 * 86_400_000, 30 * 86_400_000][random.below(3)])
            case 1: interaction.timeframe = .between(from: start + Int64(random.below(Int(span))), to: nil)
            default: break
            }
            if random.chance(0.3) { interaction.atLeast = 1 + random.below(3) }
            if interaction.interaction != .conversion && random.chance(0.3) {
                interaction.conversion = random.chance(0.5) ? .converted : .notConverted
            }
            return .interaction(interaction, negate: random.chance(0.2))
        }
        return SegmentDefinition(
            name: "random-\(index)", match: random.chance(0.5) ? .all : .any,
            rules: (0..<(1 + random.below(3))).map { _ in rule(1) })
    }

    @Test func aLongReplyIsCutAtLineEndsAndPutBackTogether() throws {
        var body: [UInt8] = []
        for i in 0..<5_000 { body += Array("\"profile-\(i)-\(String(repeating: "x", count: i % 37))\"\n".utf8) }
        let messages = ClusterReply.chunks(body, limit: 4_096)
        #expect(messages.count > 30)
        var joined: [UInt8] = []
        for (index, message) in messages.enumerated() {
            let reply = try #require(ClusterReply.parse(message))
            #expect(reply.chunk == index && reply.last == (index == messages.count - 1) && reply.error == nil)
            #expect(reply.body.count <= 4_096 && (reply.last || reply.body.last == 0x0A))
            joined += reply.body
        }
        #expect(joined == body)
        #expect(try ClusterClient.stringLines(joined).count == 5_000)
        // An empty answer is one message, and an error is one message naming its code.
        #expect(
            ClusterReply.chunks([]).count == 1 && ClusterReply.parse(ClusterReply.chunks([])[0])?.body.isEmpty == true)
        let failed = try #require(
            ClusterReply.parse(ClusterReply.chunks([], error: TouchLogError(code: .notFound, message: "no segment"))[0])
        )
        #expect(failed.error?.code == .notFound && failed.error?.message == "no segment" && failed.last)
    }

    @Test func clusterAnswersEqualOneStoreWithTheSameEvents() async throws {
        let servers = try NATSServers()
        let config = try servers.initialise(partitions: 4)
        let directory = TemporaryDirectory()
        let nodes = try RunningNodes(urls: servers.urls, directory: directory, names: ["a", "b"])
        #expect(nodes.waitForOwners(4), "\(nodes.log)")
        let client = try ClusterClient(urls: servers.urls)
        var random = SplitMix64(seed: 1)
        let profiles = (0..<60).map { "p-\($0)" } + ["é-1", "Z"]
        // Several appends, so that recorded times (the messages' JetStream times) differ and known-at matters.
        var commitTimes: [Int64] = []
        for _ in 0..<6 {
            try client.append(EventBatch(Self.randomEvents(&random, count: 80 + random.below(60), profiles: profiles)))
            commitTimes.append(Timestamp.now())
            usleep(20_000)
        }
        _ = try client.erase(profiles: ["p-3", "p-4"], reason: "test")
        try client.append(EventBatch(Self.randomEvents(&random, count: 50, profiles: profiles + ["p-3"])))
        let reference = try referenceStore(
            client.nats, partitions: config.partitions, directory: directory.path + "/reference")
        var cases = 0
        var nonEmpty = 0
        var knownAtMattered = 0
        var referable: [String] = []
        var histories = 0
        for index in 0..<30 {
            var definition = Self.randomDefinition(&random, index: index)
            // Now and then a reference to an earlier segment (one without references of its own).
            if !referable.isEmpty && random.chance(0.3) {
                definition.rules.append(.segment(referable[random.below(referable.count)], negate: random.chance(0.3)))
            } else {
                referable.append(definition.name)
            }
            try client.putSegment(definition)
            try await reference.putSegment(definition)
            if index % 3 == 0 {
                // A history: each partition's counts, added up, equal the single store's.
                let from = Self.start + Int64(random.below(Int(Self.span)))
                let expected = try await reference.history(
                    of: definition, from: from, to: from + 7 * 86_400_000, step: 86_400_000)
                let answer = try client.history(
                    of: definition, from: from, to: from + 7 * 86_400_000, step: 86_400_000, knownAt: nil)
                #expect(answer.history == expected && answer.missing.isEmpty, "history of \(definition.json)")
                histories += 1
            }
            for _ in 0..<3 {
                let asOf = Self.start + Int64(random.below(Int(Self.span + 86_400_000)))
                let knownAt: Int64? =
                    random.chance(0.5) ? commitTimes[random.below(commitTimes.count)] + Int64(random.below(3)) - 1 : nil
                let time = QueryTime(asOf: asOf, knownAt: knownAt)
                let expected = try await reference.members(of: definition, at: time)
                let answer = try client.members(of: definition, at: time)
                #expect(answer.members == expected, "\(definition.json) at \(time)")
                #expect(!answer.members.contains("p-4"))
                #expect(try client.count(of: definition, at: time).count == expected.count)
                cases += 1
                if !expected.isEmpty { nonEmpty += 1 }
                if knownAt != nil, try await reference.members(of: definition, at: QueryTime(asOf: asOf)) != expected {
                    knownAtMattered += 1
                }
            }
        }
        #expect(cases == 90 && histories == 10)
        // Replay: the same events with the same recorded times (offsets are each partition store's own).
        func withoutOffsets(_ lines: [UInt8]) -> [String] {
            String(decoding: lines, as: UTF8.self).split(separator: "\n").map {
                String($0.replacing(/"offset":\d+,/, with: ""))
            }.sorted()
        }
        var referenceLines: [UInt8] = []
        for event in try await reference.events() {
            EventJSON.appendLine(event, to: &referenceLines)
        }
        let replayed = withoutOffsets(try client.replay(ReplayFilter()).lines)
        #expect(
            replayed == withoutOffsets(referenceLines),
            "\(replayed.count) vs \(withoutOffsets(referenceLines).count): \(Set(replayed).symmetricDifference(withoutOffsets(referenceLines)).prefix(4))"
        )
        let aliceLike = try client.replay(ReplayFilter(profiles: ["p-7"], types: [.click]))
        #expect(
            withoutOffsets(aliceLike.lines)
                == withoutOffsets(
                    try await reference.events(matching: ReplayFilter(profiles: ["p-7"], types: [.click]))
                        .reduce(into: [UInt8]()) { EventJSON.appendLine($1, to: &$0) }))
        // Known at K: what every partition had recorded by then, as the single store with the same recorded times.
        let recordedTimes = try await reference.events().map(\.recorded).sorted()
        let knownAt = recordedTimes[recordedTimes.count / 2]
        #expect(
            withoutOffsets(try client.replay(ReplayFilter(knownAt: knownAt)).lines)
                == withoutOffsets(
                    try await reference.events(matching: ReplayFilter(knownAt: knownAt))
                        .reduce(into: [UInt8]()) { EventJSON.appendLine($1, to: &$0) }))
        // Explain: the owner's verdict is the single store's.
        for index in 0..<10 {
            let definition = Self.randomDefinition(&random, index: 100 + index)
            let profile = profiles[random.below(profiles.count)]
            let time = QueryTime(asOf: Self.start + Int64(random.below(Int(Self.span))))
            let text = try client.explain(definition, revision: 1, profile: profile, at: time)
            let expected = try reference.withReader { reader throws(TouchLogError) in
                do { return try reader.explain(definition, profile: profile, at: time) } catch {
                    throw error as! TouchLogError
                }
            }
            #expect(text.hasPrefix("\(profile) is \(expected.isMember ? "a member" : "NOT a member")"), "\(text)")
        }
        // The cases tell answers apart: most have members, and known-at changes some.
        #expect(
            nonEmpty >= 30 && knownAtMattered >= 3,
            "\(nonEmpty) non-empty answers, known-at mattered \(knownAtMattered) times")
        // Every replica agrees on what it applied: the status digests are those of the stream.
        let status = try client.status()
        #expect(status.allSatisfy { $0.appliedSequence == $0.streamSequence && $0.digest != nil })
        nodes.stop()
    }

    @Test func wrongSetupsGetOneClearLineAndChangeNothing() throws {
        let servers = try NATSServers()
        // NATS unreachable: the URLs tried, within seconds.
        let deadPort = freePort()
        let began = ContinuousClock.now
        let unreachable = try touchlog(["query", "--nats", "nats://127.0.0.1:\(deadPort)", "x"])
        #expect(unreachable.status == 1)
        #expect(unreachable.stderr.contains("cannot reach NATS at nats://127.0.0.1:\(deadPort)"))
        #expect(ContinuousClock.now - began < .seconds(10))
        // Not initialised.
        let bare = try touchlog(["query", "--nats", servers.urlList, "x"])
        #expect(bare.status == 66)
        #expect(bare.stderr.contains("no touchlog cluster at"))
        // Out-of-range settings are usage errors, before NATS is asked anything.
        let zero = try touchlog(["cluster", "init", "--nats", servers.urlList, "--partitions", "0"])
        #expect(zero.status == 64 && zero.stderr.contains("--partitions must be 1 to 4096, not 0"), "\(zero)")
        // Init twice with another partition count.
        #expect(
            try touchlog(["cluster", "init", "--nats", servers.urlList, "--partitions", "3", "--lease", "2"]).status
                == 0)
        let again = try touchlog(["cluster", "init", "--nats", servers.urlList, "--partitions", "5"])
        #expect(again.status == 1)
        #expect(again.stderr.contains("has 3 partitions, not 5"))
        #expect(
            try touchlog(["cluster", "init", "--nats", servers.urlList, "--partitions", "3"]).stdout.contains(
                "exists: 3 partitions"))
        // An invalid event: nothing published, the line named.
        let directory = TemporaryDirectory()
        let input = directory.file(
            "in.jsonl",
            """
            {"time":"2022-06-01T09:00:00Z","profile":"alice","type":"view","touchpoint":"a"}
            {"time":"2022-06-01T09:00:00Z","profile":"","type":"view","touchpoint":"a"}

            """)
        let refused = try touchlog(["append", "--nats", servers.urlList, input])
        #expect(refused.status == 65)
        #expect(refused.stderr.hasPrefix("2 profile is empty"), "\(refused.stderr)")
        #expect(refused.stderr.contains("nothing published"))
        let client = try ClusterClient(urls: servers.urls)
        for partition in 0..<3 {
            #expect(try client.nats.streamState(ClusterConfig.stream(partition))?.lastSequence == 0)
        }
        // A node whose data directory belongs to another cluster.
        let data = directory.path + "/node"
        try FileManager.default.createDirectory(atPath: data, withIntermediateDirectories: true)
        try DurableFile.write(Array("0123456789abcdef".utf8), kind: "cluster-id", to: data + "/cluster-id")
        let foreign = try touchlog(["node", "--nats", servers.urlList, "--data", data])
        #expect(foreign.status == 1)
        #expect(foreign.stderr.contains("holds the partitions of cluster 0123456789abcdef"))
        // No owner: the query fails naming the partitions, or answers from the rest with --allow-partial.
        #expect(
            try touchlog(["append", "--nats", servers.urlList, fixturePath("events/sample.jsonl", from: #filePath)])
                .status == 0)
        #expect(
            try touchlog([
                "segment", "put", "--nats", servers.urlList,
                fixturePath("segments/summer-2022-clickers.json", from: #filePath),
            ]).status == 0)
        let unowned = try touchlog(["query", "--nats", servers.urlList, "summer-2022-clickers"])
        #expect(unowned.status == 1)
        #expect(unowned.stderr.contains("partitions 0 (no owner), 1 (no owner), 2 (no owner) missing"))
        let partial = try touchlog(["query", "--nats", servers.urlList, "summer-2022-clickers", "--allow-partial"])
        #expect(partial.status == 0)
        #expect(partial.stderr.contains("partial answer: partitions 0, 1, 2 missing"))
    }

    @Test func aKilledNodeResumesWithoutApplyingAnythingTwice() throws {
        let servers = try NATSServers()
        _ = try servers.initialise(partitions: 2, leaseMilliseconds: 2_000)
        let directory = TemporaryDirectory()
        let client = try ClusterClient(urls: servers.urls)
        var random = SplitMix64(seed: 7)
        var node = try NodeProcess(
            urls: servers.urlList, data: directory.path + "/n", name: "n", log: directory.path + "/n.log")
        var published = 0
        for round in 0..<6 {
            for _ in 0..<40 {
                published += try client.append(
                    EventBatch(Self.randomEvents(&random, count: 30, profiles: (0..<40).map { "p-\($0)" })))
            }
            // Killed while it applies what was just published; the next one resumes from its store's last sequence.
            usleep(UInt32(20_000 + random.below(100_000)))
            node.kill()
            if round < 5 {
                usleep(2_200_000)  // the dead node's leases lapse
                node = try NodeProcess(
                    urls: servers.urlList, data: directory.path + "/n", name: "n", log: directory.path + "/n.log")
            }
        }
        node = try NodeProcess(
            urls: servers.urlList, data: directory.path + "/n", name: "n", log: directory.path + "/n.log")
        #expect(
            eventually(.seconds(60)) {
                (try? client.status().allSatisfy { $0.appliedSequence == $0.streamSequence }) == true
            }, "\(node.output)")
        let stats = try client.stats()
        #expect(stats.events == UInt64(published))
        // Each local store is an ordinary store that verifies.
        node.kill()
        for partition in 0..<2 {
            let verify = try touchlog(["verify", "--store", directory.path + "/n/p\(partition)"])
            #expect(verify.status == 0, "\(verify.stderr)")
        }
    }

    @Test func aLapsedLeaseIsTakenOverAndASlowOwnerMissesTheDeadline() throws {
        let servers = try NATSServers()
        _ = try servers.initialise(partitions: 4, leaseMilliseconds: 3_000)
        let directory = TemporaryDirectory()
        let a = try NodeProcess(
            urls: servers.urlList, data: directory.path + "/a", name: "a", log: directory.path + "/a.log")
        let b = try NodeProcess(
            urls: servers.urlList, data: directory.path + "/b", name: "b", log: directory.path + "/b.log")
        let client = try ClusterClient(urls: servers.urls)
        #expect(
            eventually(.seconds(60)) {
                (try? client.owners().count) == 4 && Set((try? client.owners().values).map(Array.init) ?? []).count == 2
            },
            "\(a.output)\n\(b.output)")
        #expect(
            try touchlog(["append", "--nats", servers.urlList, fixturePath("events/sample.jsonl", from: #filePath)])
                .status == 0)
        for name in ["summer-2022-clickers", "discount-clickers-not-converted", "iphone-interest"] {
            #expect(
                try touchlog([
                    "segment", "put", "--nats", servers.urlList, fixturePath("segments/\(name).json", from: #filePath),
                ]).status == 0)
        }
        func answers() throws -> [String] {
            try ["summer-2022-clickers", "discount-clickers-not-converted", "iphone-interest"].map { name in
                let run = try touchlog(["query", "--nats", servers.urlList, name, "--as-of", "2022-07-01T00:00:00Z"])
                #expect(run.status == 0, "\(run.stderr)")
                return run.stdout
            }
        }
        let before = try answers()
        #expect(before[0].contains("alice"))
        // explain, diff and replay through the cluster say what one store with the same events says.
        let local = directory.path + "/local"
        #expect(
            try touchlog(["append", "--store", local, fixturePath("events/sample.jsonl", from: #filePath)]).status == 0)
        #expect(
            try touchlog([
                "segment", "put", "--store", local,
                fixturePath("segments/discount-clickers-not-converted.json", from: #filePath),
            ]).status == 0)
        let explained = try touchlog([
            "explain", "--nats", servers.urlList, "summer-2022-clickers", "alice", "--as-of", "2022-06-15T00:00:00Z",
        ])
        #expect(
            explained.stdout.hasPrefix("alice is a member of summer-2022-clickers (revision 1; offsets in partition"),
            "\(explained)")
        let diffArguments = [
            "discount-clickers-not-converted", "--from", "2022-06-15T00:00:00Z", "--to", "2022-07-31T00:00:00Z",
        ]
        let clusterDiff = try touchlog(["diff", "--nats", servers.urlList] + diffArguments)
        #expect(clusterDiff.status == 0 && !clusterDiff.stdout.isEmpty)
        #expect(clusterDiff.stdout == (try touchlog(["diff", "--store", local] + diffArguments)).stdout)
        let replayed = try touchlog(["replay", "--nats", servers.urlList, "--profile", "alice"])
        #expect(
            replayed.stdout.split(separator: "\n").count
                == (try touchlog(["replay", "--store", local, "--profile", "alice"])).stdout.split(separator: "\n")
                .count)
        let appliedBefore = try client.status().map { [$0.appliedSequence.map(String.init) ?? "-", $0.digest ?? "-"] }
        // A slow owner (stopped, not dead): the query fails at its deadline, naming the partitions.
        b.signal(SIGSTOP)
        let slow = try touchlog(["query", "--nats", servers.urlList, "summer-2022-clickers", "--timeout", "1"])
        #expect(slow.status == 1)
        #expect(slow.stderr.contains("(owner b did not answer within"))
        b.signal(SIGCONT)
        // Killed: its partitions fail fast until the lease lapses, then a survivor answers the same.
        b.kill()
        let killedOwners = try client.owners().filter { $0.value == "b" }.keys.sorted()
        let during = try touchlog(["query", "--nats", servers.urlList, "summer-2022-clickers"])
        if during.status != 0 {
            #expect(during.stderr.contains("its owner b is not running") || during.stderr.contains("no owner"))
        }
        #expect(
            eventually(.seconds(60)) {
                (try? client.owners().values.allSatisfy { $0 == "a" }) == true && (try? client.owners().count) == 4
            },
            "partitions \(killedOwners) not taken over: \(a.output)")
        #expect(try answers() == before)
        // The survivor rebuilt b's partitions from their streams: the same sequence applied gives the same digest.
        // (Status asks each owner with a deadline and leaves out one that has not answered yet, as a loaded machine's
        // survivor may not right after a takeover: asked until every partition answers.)
        var appliedAfter: [[String]] = []
        #expect(
            eventually(.seconds(30)) {
                appliedAfter =
                    (try? client.status().map { [$0.appliedSequence.map(String.init) ?? "-", $0.digest ?? "-"] }) ?? []
                return appliedAfter == appliedBefore
            }, "\(appliedAfter) after the takeover, \(appliedBefore) before")
    }

    @Test func threeReplicasKeepServingWhenANATSServerDies() throws {
        let servers = try NATSServers(count: 3)
        _ = try servers.initialise(partitions: 2, replicas: 3, leaseMilliseconds: 8_000)
        let directory = TemporaryDirectory()
        // A new NATS cluster takes a few seconds to elect the leaders of the streams and buckets.
        var ready: ClusterClient?
        #expect(
            eventually(.seconds(60)) {
                ready = try? ClusterClient(urls: servers.urls)
                return ready != nil
            })
        let client = try #require(ready)
        let node = try NodeProcess(
            urls: servers.urlList, data: directory.path + "/n", name: "n", log: directory.path + "/n.log")
        #expect(eventually(.seconds(60)) { (try? client.owners().count) == 2 }, "\(node.output)")
        var random = SplitMix64(seed: 3)
        var published = try client.append(
            EventBatch(Self.randomEvents(&random, count: 500, profiles: (0..<50).map { "p-\($0)" })))
        #expect(eventually(.seconds(60)) { (try? client.stats().events) == UInt64(published) })
        servers.kill(0)
        // Producers and the node go on through the two servers left (once JetStream has moved the leaders off it).
        var left: ClusterClient?
        #expect(
            eventually(.seconds(60)) {
                left = try? ClusterClient(urls: Array(servers.urls.dropFirst()))
                return left != nil
            })
        let survivors = try #require(left)
        #expect(
            eventually(.seconds(60)) {
                guard
                    let more = try? survivors.append(
                        EventBatch(Self.randomEvents(&random, count: 100, profiles: ["q-1", "q-2"])))
                else { return false }
                published += more
                return true
            })
        // An append that failed part way (JetStream electing new leaders) may have left messages in the streams, and an
        // acknowledgement lost on the way may be published again: the node must apply exactly what the streams hold,
        // which is at least every event acknowledged.
        var inStreams = 0
        #expect(
            eventually(.seconds(60)) {
                guard let messages = try? streamMessages(survivors.nats, partitions: 2) else { return false }
                inStreams = messages.reduce(0) { $0 + ($1.erase ? 0 : $1.payload.split(separator: 0x0A).count) }
                return true
            })
        #expect(inStreams >= published)
        #expect(eventually(.seconds(60)) { (try? survivors.stats().events) == UInt64(inStreams) }, "\(node.output)")
    }

    @Test func aRenewalWhoseAnswerWasLostKeepsTheLeaseAndAnotherNodesClaimDoesNot() throws {
        let servers = try NATSServers()
        _ = try servers.initialise(partitions: 1, leaseMilliseconds: 1_500)
        let directory = TemporaryDirectory()
        let nodes = try RunningNodes(urls: servers.urls, directory: directory, names: ["a"])
        #expect(nodes.waitForOwners(1), "\(nodes.log)")
        let client = try ClusterClient(urls: servers.urls)
        // The node's own write, as when a renewal reached JetStream but its acknowledgement did not reach the node: the
        // revision moved, and the node keeps the partition.
        try client.leases.put("p0", Array(#"{"node":"a","since":0}"#.utf8))
        usleep(1_200_000)
        #expect(nodes.nodes[0].ownedPartitions == [0], "\(nodes.log)")
        #expect(!nodes.log.contains("lost the lease"))
        // Another node's claim (after a lapse the node did not see): the partition is lost, not taken back.
        try client.leases.put("p0", Array(#"{"node":"z","since":0}"#.utf8))
        #expect(eventually(.seconds(10)) { nodes.nodes[0].ownedPartitions.isEmpty }, "\(nodes.log)")
        #expect(nodes.log.contains("lost the lease of partition 0"))
        nodes.stop()
    }

    @Test func serveOverTheClusterAnswersLikeTheCLI() async throws {
        let servers = try NATSServers()
        _ = try servers.initialise(partitions: 3)
        let directory = TemporaryDirectory()
        let node = try NodeProcess(
            urls: servers.urlList, data: directory.path + "/n", name: "n", log: directory.path + "/n.log")
        let client = try ClusterClient(urls: servers.urls)
        #expect(eventually(.seconds(60)) { (try? client.owners().count) == 3 }, "\(node.output)")
        let serve = try NodeProcess(
            arguments: ["serve", "--nats", servers.urlList, "--port", "0"], log: directory.path + "/serve.log")
        var port = 0
        #expect(
            eventually(.seconds(60)) {
                guard
                    let line = serve.output.split(separator: "\n").first(where: { $0.contains("on http://127.0.0.1:") })
                else { return false }
                port = Int(line.split(separator: ":").last ?? "") ?? 0
                return port > 0
            }, "\(serve.output)")
        func request(_ method: HTTPMethod, _ path: String, _ body: [UInt8]? = nil) async throws -> (
            status: Int, text: String
        ) {
            var request = HTTPClientRequest(url: "http://127.0.0.1:\(port)\(path)")
            request.method = method
            if let body { request.body = .bytes(ByteBuffer(bytes: body)) }
            let response = try await HTTPClient.shared.execute(request, timeout: .minutes(5))
            let bytes = try await response.body.collect(upTo: 1 << 24)
            return (Int(response.status.code), String(buffer: bytes))
        }
        let events = try Array(
            Data(contentsOf: URL(fileURLWithPath: fixturePath("events/sample.jsonl", from: #filePath))))
        let appended = try await request(.POST, "/v1/events", events)
        #expect(appended.status == 200 && appended.text.contains("\"appended\":42"), "\(appended)")
        let definition = try Array(
            Data(contentsOf: URL(fileURLWithPath: fixturePath("segments/summer-2022-clickers.json", from: #filePath))))
        #expect(try await request(.PUT, "/v1/segments/summer-2022-clickers", definition).status == 201)
        let members = try await request(.GET, "/v1/segments/summer-2022-clickers/members?asOf=2022-07-03T00:00:00Z")
        #expect(members.text.contains("\"count\":2,\"members\":[\"bob\",\"grace\"]"), "\(members)")
        let cli = try touchlog([
            "query", "--nats", servers.urlList, "summer-2022-clickers", "--as-of", "2022-07-03T00:00:00Z",
        ])
        #expect(cli.stdout == "bob\ngrace\n")
        let explained = try await request(
            .GET, "/v1/segments/summer-2022-clickers/explain?profile=bob&asOf=2022-07-03T00:00:00Z")
        #expect(explained.text.contains("\"member\":true"), "\(explained)")
        #expect(try await request(.GET, "/v1/events/tail").status == 501)
        #expect(try await request(.DELETE, "/v1/profiles/bob?reason=test").status == 200)
        let after = try await request(
            .GET, "/v1/segments/summer-2022-clickers/members?asOf=2022-07-03T00:00:00Z&countOnly=true")
        #expect(after.text.contains("\"count\":1"), "\(after)")
        // A partition without an owner: 503, naming it.
        node.kill()
        #expect(eventually(.seconds(60)) { (try? client.owners().count) == 0 })
        let missing = try await request(.GET, "/v1/segments/summer-2022-clickers/members")
        #expect(missing.status == 503 && missing.text.contains("partitionMissing"), "\(missing)")
    }
}
