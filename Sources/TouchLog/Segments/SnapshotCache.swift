/// Format-2 snapshots decoded lately, by path, shared by a store's readers and bounded by their decoded bytes (64 MiB:
/// every snapshot of a few segments of a million profiles). A snapshot file never changes once written, and a reader
/// checks that a snapshot belongs to its log before using it, cached or not. A million-profile snapshot takes from a
/// few hundred kilobytes to some ten megabytes decoded, and a tenth to most of a query's time to read and decode again.
typealias SnapshotCache = BoundedCache<String, GroupedSnapshot>

extension BoundedCache where Key == String, Value == GroupedSnapshot {
    /// A cache of `capacity` decoded bytes.
    convenience init(snapshotBytes capacity: Int = 64 << 20) {
        self.init(capacity: capacity, largest: capacity)
    }

    /// The snapshot decoded from the file at `path` (relative to the store), if kept.
    func snapshot(at path: String) -> GroupedSnapshot? { value(for: path) }

    /// Keeps `snapshot`, decoded from the file at `path`.
    func keep(_ snapshot: GroupedSnapshot, at path: String) { keep(snapshot, bytes: snapshot.decodedBytes, for: path) }
}

extension GroupedSnapshot {
    /// About how many bytes its decoded columns take.
    var decodedBytes: Int {
        func size<T>(_ array: [T]) -> Int { array.count * MemoryLayout<T>.stride }
        var total = 0
        for case let entries? in rules {
            total += size(entries.ids) + size(entries.counts) + size(entries.firsts) + size(entries.valueCounts)
            total += size(entries.valueSums) + size(entries.valueLeast) + size(entries.valueGreatest)
            total += size(entries.recent)
        }
        if let conversions { total += size(conversions.ids) + size(conversions.times) }
        for case let entries? in sequences { total += size(entries.matched) + size(entries.candidates) }
        return total
    }
}
