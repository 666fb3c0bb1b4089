/// Who entered and who left a segment between two member lists (both sorted by bytes).
public struct SegmentDiff: Sendable {
    /// One profile that entered or left.
    public struct Change: Sendable, Equatable {
        /// The profile.
        public var profile: String
        /// True for an entry (+), false for an exit (−).
        public var entered: Bool

        /// A change of `profile`.
        public init(profile: String, entered: Bool) {
            self.profile = profile
            self.entered = entered
        }
    }

    /// Entries and exits, sorted by profile bytes.
    public let changes: [Change]

    /// The profiles that entered, sorted by bytes.
    public var entered: [String] { changes.filter(\.entered).map(\.profile) }
    /// The profiles that left, sorted by bytes.
    public var exited: [String] { changes.filter { !$0.entered }.map(\.profile) }

    /// The changes from the members `before` to the members `after` (both sorted by bytes).
    public init(before: [String], after: [String]) {
        var changes: [Change] = []
        var i = 0
        var j = 0
        let a = before.map { Array($0.utf8) }
        let b = after.map { Array($0.utf8) }
        while i < a.count || j < b.count {
            if j == b.count || (i < a.count && a[i].lexicographicallyPrecedes(b[j])) {
                changes.append(Change(profile: before[i], entered: false))
                i += 1
            } else if i == a.count || b[j].lexicographicallyPrecedes(a[i]) {
                changes.append(Change(profile: after[j], entered: true))
                j += 1
            } else {
                i += 1
                j += 1
            }
        }
        self.changes = changes
    }
}
