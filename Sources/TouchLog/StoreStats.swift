import TouchLogStorage

/// What `touchlog stats` reports about a store.
public struct StoreStats: Sendable {
    /// Events in the log.
    public var events: UInt64 = 0
    /// The log's format version (1, 2 or 3).
    public var formatVersion: UInt16 = 1
    /// Distinct profiles whose identifiers the store holds (format 3: erased ones not counted).
    public var profiles = 0
    /// Format 3: profiles erased (their events stay, anonymous).
    public var erasedProfiles = 0
    /// Distinct touchpoints.
    public var touchpoints = 0
    /// Log files.
    public var files = 0
    /// Blocks in the log.
    public var blocks = 0
    /// Bytes of the log files.
    public var logBytes: Int64 = 0
    /// Bytes of everything in the store directory.
    public var totalBytes: Int64 = 0
    /// Events of each type.
    public var eventsByType: [EventType: UInt64] = [:]
    /// Earliest and latest event time.
    public var timeRange: ClosedRange<Int64>?
    /// Earliest and latest recorded time.
    public var recordedRange: ClosedRange<Int64>?
    /// Snapshot files.
    public var snapshots = 0
    /// Current segments.
    public var segments = 0

    /// Log bytes per event.
    public var bytesPerEvent: Double { events == 0 ? 0 : Double(logBytes) / Double(events) }
}

extension StoreReader {
    /// Counts the store's events, distinct profiles and touchpoints, files and bytes. Reads the whole log (formats 2
    /// and 3: only the block summaries).
    package func stats(progress: (_ done: UInt64, _ total: UInt64) -> Void = { _, _ in }) throws -> StoreStats {
        var stats = StoreStats()
        let layout = StoreLayout(root: directory)
        var minTime = Int64.max
        var maxTime = Int64.min
        if formatVersion >= 2 {
            // Read from the summaries: every string is introduced once, and groups count events by type.
            for (index, summary) in try summaries(through: log.blocks.count).enumerated() {
                for group in summary.groups {
                    stats.eventsByType[EventType(rawValue: group.type)!, default: 0] += UInt64(group.count)
                }
                minTime = min(minTime, log.blocks[index].header.minTime)
                maxTime = max(maxTime, log.blocks[index].header.maxTime)
                stats.profiles += summary.newProfiles
                stats.touchpoints += summary.newTouchpoints
                stats.events += UInt64(summary.count)
                stats.blocks += 1
                progress(stats.events, endOffset)
            }
        } else {
            var profiles = StringTable()
            var touchpoints = StringTable()
            try forEachBlock { block in
                let events = block.events
                _ = profiles.internAll(events.profiles)
                _ = touchpoints.internAll(events.touchpoints)
                for raw in events.types { stats.eventsByType[EventType(rawValue: raw)!, default: 0] += 1 }
                for t in events.times {
                    minTime = min(minTime, t)
                    maxTime = max(maxTime, t)
                }
                stats.events += UInt64(events.count)
                stats.blocks += 1
                progress(stats.events, endOffset)
            }
            stats.profiles = profiles.count
            stats.touchpoints = touchpoints.count
        }
        if stats.events > 0 {
            stats.timeRange = minTime...maxTime
            stats.recordedRange = log.blocks.first!.header.minRecorded...log.blocks.last!.header.maxRecorded
        }
        stats.erasedProfiles = erasures.profiles.count
        stats.profiles -= stats.erasedProfiles
        stats.formatVersion = formatVersion
        stats.files = log.files.count
        stats.logBytes = log.files.reduce(0) { $0 + fileSize(layout.log + "/" + $1.name) }
        stats.totalBytes = directorySize(layout.root)
        stats.snapshots = snapshots().count
        stats.segments = ((try? segments.list()) ?? []).count
        return stats
    }
}

/// The size of the file at `path`; 0 when there is none.
func fileSize(_ path: String) -> Int64 {
    SystemFile.status(path)?.size ?? 0
}

/// The bytes of the files at and under `path`.
func directorySize(_ path: String) -> Int64 {
    guard let status = SystemFile.status(path) else { return 0 }
    guard status.kind == .directory else { return status.size }
    return ((try? SystemFile.list(path)) ?? []).reduce(0) { $0 + directorySize(path + "/" + $1) }
}
