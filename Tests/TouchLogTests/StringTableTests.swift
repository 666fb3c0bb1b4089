import Foundation
import Glibc
import Testing
import TouchLogStorage
import TouchLogTestSupport

@testable import TouchLog

@Suite struct StringTableTests {
    /// Random identifiers with shared prefixes, lengths around the 8-byte word the index compares first, and bytes
    /// that sort differently signed and unsigned.
    func randomStrings(_ count: Int, seed: UInt64) -> [[UInt8]] {
        var random = SplitMix64(seed: seed)
        let stems: [[UInt8]] = [Array("p-".utf8), Array("profile-0000".utf8), [0xC3, 0xA9], [0x00], []]
        return (0..<count).map { _ in
            var s = stems[Int(random.next() % UInt64(stems.count))]
            let extra = Int(random.next() % 14)
            for _ in 0..<extra {
                s.append(UInt8(truncatingIfNeeded: [0x30, 0x31, 0x7F, 0x80, 0xFF, 0x00][Int(random.next() % 6)]))
            }
            return s.isEmpty ? [0x41] : s
        }
    }

    func intern(_ s: [UInt8], into table: inout StringTable) -> UInt32 {
        s.withUnsafeBytes { table.intern($0) }
    }

    func table(_ strings: [[UInt8]]) -> StringTable {
        var t = StringTable()
        for s in strings { t.append(s) }
        return t
    }

    /// Interning through the sorted run, the hash index, one at a time or a whole (sorted) dictionary, with or
    /// without a subset, always gives each distinct string one id and never loses one.
    @Test(arguments: [0, 1, 50, 3_000])
    func sortedRunAndHashIndexAgreeWithADictionary(sortedPrefix: Int) {
        for seed in UInt64(1)...4 {
            var t = StringTable()
            let base = Array(Set(randomStrings(sortedPrefix, seed: seed))).sorted { $0.lexicographicallyPrecedes($1) }
            for s in base { t.append(s) }
            t.markSorted()
            var expected: [[UInt8]: UInt32] = [:]
            for (i, s) in base.enumerated() { expected[s] = UInt32(i) }
            func check(_ s: [UInt8], _ id: UInt32) {
                if let known = expected[s] {
                    #expect(known == id)
                } else {
                    #expect(Int(id) == expected.count)
                    expected[s] = id
                }
                #expect(Array(t[Int(id)]) == s)
            }
            for s in randomStrings(500, seed: seed + 100) { check(s, intern(s, into: &t)) }
            let dictionary = Array(Set(randomStrings(2_000, seed: seed + 200))).sorted {
                $0.lexicographicallyPrecedes($1)
            }
            var only = [Bool](repeating: false, count: dictionary.count)
            for i in stride(from: 0, to: dictionary.count, by: 3) { only[i] = true }
            let some = t.internAll(table(dictionary), only: only)
            for (i, s) in dictionary.enumerated() {
                if only[i] { check(s, some[i]) } else { #expect(some[i] == .max) }
            }
            let all = t.internAll(table(dictionary))
            for (i, s) in dictionary.enumerated() { check(s, all[i]) }
            // Unsorted input to internAll still works (it restarts its walk).
            let shuffled = dictionary.reversed().map { $0 }
            for (i, s) in t.internAll(table(shuffled)).enumerated() { check(shuffled[i], s) }
            #expect(t.count == expected.count)
        }
    }

    /// A forgotten string is found by no lookup, in the sorted run or the hash index, before or after a rehash; the
    /// same bytes interned again get a new id.
    @Test func aForgottenStringIsFoundNoMoreAndComesBackUnderANewID() {
        var t = StringTable()
        for s in ["a", "b", "c"] { t.append(Array(s.utf8)) }
        t.markSorted()
        let long = Array(String(repeating: "x", count: 40).utf8)
        #expect(intern(long, into: &t) == 3)
        #expect(intern(Array("d".utf8), into: &t) == 4)
        t.forget([1, 3])
        #expect(intern(Array("b".utf8), into: &t) == 5)
        #expect(intern(long, into: &t) == 6)
        for _ in 0..<100 { _ = intern(Array(UUID().uuidString.utf8), into: &t) }  // rehashes
        #expect(t.internAll(table([Array("b".utf8), long, Array("c".utf8)])) == [5, 6, 2])
        #expect(t[1].allSatisfy { $0 == 0 } && t[3].allSatisfy { $0 == 0 })
    }

    /// A commit's blocks are looked up together before any of their missing strings is interned (as the writer
    /// does): a string two blocks lack gets one id, from the block interned first, and many missing strings at once
    /// (more than one group of probes, and enough to rebuild the index) keep their order of ids.
    @Test(arguments: [5, 40, 5_000])
    func stringsMissingFromSeveralLookupsAreInternedOnce(count: Int) {
        var t = table([Array("seed".utf8)])
        let first = Array(Set(randomStrings(count, seed: 7))).sorted { $0.lexicographicallyPrecedes($1) }
        let second = Array(Set(randomStrings(count, seed: 8) + first.prefix(count / 2))).sorted {
            $0.lexicographicallyPrecedes($1)
        }
        t.prepareLookups()
        var a = t.lookUp(table(first))
        var b = t.lookUp(table(second))
        t.internMissing(table(first), &a)
        t.internMissing(table(second), &b)
        var expected: [[UInt8]: UInt32] = [Array("seed".utf8): 0]
        for k in a.missing { expected[first[k]] = UInt32(expected.count) }
        for k in b.missing where expected[second[k]] == nil { expected[second[k]] = UInt32(expected.count) }
        #expect(t.count == expected.count)
        for (i, s) in first.enumerated() { #expect(a.ids[i] == expected[s]) }
        for (i, s) in second.enumerated() {
            #expect(b.ids[i] == expected[s])
            #expect(Array(t[Int(b.ids[i])]) == s)
        }
        #expect(t.internAll(table(second)) == b.ids)
    }

    @Test func sortingByBytesMatchesLexicographicOrder() {
        for seed in UInt64(1)...4 {
            var t = StringTable()
            let sortedPart = Array(Set(randomStrings(300, seed: seed))).sorted { $0.lexicographicallyPrecedes($1) }
            for s in sortedPart { t.append(s) }
            t.markSorted()
            for s in randomStrings(700, seed: seed + 9) { _ = intern(s, into: &t) }
            var ids = Array(0..<t.count).filter { $0 % 2 == 0 || $0 >= 300 }
            let expected = ids.sorted { Array(t[$0]).lexicographicallyPrecedes(Array(t[$1])) }
            let order = t.byteOrder(of: ids)
            #expect(order.map { ids[$0] } == expected)
            t.sortByBytes(&ids)
            #expect(ids == expected)
            // Only strings of the sorted run, and only strings after it.
            let run = Array(0..<t.sortedCount).filter { $0 % 3 == 0 }
            #expect(t.byteOrder(of: run) == Array(run.indices))
            let after = Array(t.sortedCount..<t.count)
            #expect(
                t.byteOrder(of: after).map { after[$0] }
                    == after.sorted { Array(t[$0]).lexicographicallyPrecedes(Array(t[$1])) })
        }
    }
}

extension SnapshotRetentionTests {
    /// The snapshots directory is derived data: deleting it changes no answer and the next query recreates it.
    @Test(arguments: [UInt16(1), 2])
    func aDeletedSnapshotsDirectoryIsRecreated(format: UInt16) async throws {
        let dir = TemporaryDirectory()
        let store = try TouchLogStore(
            directory: dir.path + "/s", options: LogOptions(formatVersion: format), blockEvents: 100)
        _ = try await store.append(randomEvents(1_000, seed: 3))
        store.close()
        // (Format 2 keeps rules over all time, or between fixed dates, in snapshots.)
        let definition = try SegmentDefinition(
            json:
                #"{"name":"v","match":"all","rules":[{"interaction":"any","touchpoint":{"contains":"a"},"conversion":"not_converted"}]}"#
        )
        let reader = try StoreReader(directory: dir.path + "/s")
        reader.snapshotInterval = 100
        let time = QueryTime(asOf: .max)
        let before = try reader.members(of: definition, at: time)
        #expect(reader.lastQuery.snapshotsWritten == 1)
        #expect(system("rm -rf '\(dir.path)/s/snapshots'") == 0)
        let after = try reader.members(of: definition, at: time)
        #expect(after == before)
        #expect(reader.lastQuery.snapshotsWritten == 1)
        #expect(reader.snapshots().count == 1)
    }

    /// The radix sort agrees with a stable comparison sort: on keys that differ only in some bytes (identifier
    /// prefixes, small integers), on many equal keys (their values keep their order), and below and above the
    /// size where it switches to a comparison sort.
    @Test(arguments: [0, 1, 63, 64, 65, 1_000, 20_000])
    func radixSortAgreesWithAStableComparisonSort(count: Int) {
        var random = SplitMix64(seed: UInt64(count) &+ 5)
        let shapes: [(inout SplitMix64) -> UInt64] = [
            { $0.next() },
            { $0.next() % 1_000_000 },
            { 0x702D_3030_3030_3030 | ($0.next() & 0x0F0F_0F0F) },
            { ($0.next() % 7) << 40 },
            { _ in 42 },
        ]
        for shape in shapes {
            var keys = (0..<count).map { _ in shape(&random) }
            var values = Array(0..<count).shuffled(using: &random)
            let expected = zip(keys, values).enumerated().sorted {
                ($0.element.0, $0.offset) < ($1.element.0, $1.offset)
            }
            radixSort(keys: &keys, values: &values)
            #expect(keys == expected.map(\.element.0))
            #expect(values == expected.map(\.element.1))
        }
    }

    /// The 11-digit radix sort's permutation (layout 3's time order) is a stable sort's: on full 32-bit keys (three
    /// passes), keys under 2¹¹ and 2²² (one and two), many equal keys, and none.
    @Test(arguments: [0, 1, 2, 1_000, 70_000])
    func stableOrderIsAStableSortsPermutation(count: Int) {
        var random = SplitMix64(seed: UInt64(count) &+ 9)
        let shapes: [(inout SplitMix64) -> UInt32] = [
            { UInt32(truncatingIfNeeded: $0.next()) },
            { UInt32($0.next() % 2_000) },
            { UInt32($0.next() % 4_000_000) },
            { UInt32($0.next() % 5) << 30 },
            { _ in 7 },
        ]
        for shape in shapes {
            let keys = (0..<count).map { _ in shape(&random) }
            let expected = keys.indices.sorted { (keys[$0], $0) < (keys[$1], $1) }
            #expect(stableOrder(of: keys).map(Int.init) == expected)
        }
    }
}
