import TouchLogStorage

/// The times and profiles sections of format-2 blocks that queries read lately, decompressed and checked, shared by
/// a store's readers and bounded by their bytes (64 MiB: the recent months of a store of ten million events; none
/// bigger than a quarter of that). A block's bytes never change once committed, and an entry is found by the block's
/// hash, so it is only ever the section of the very block a query asks for. A windowed rule reads these two sections
/// whole in every block its window meets (at the latest time, tens of megabytes for a rule over the last 60 days'
/// conversions): questions about recent times keep asking for the same blocks, which then cost neither a read, nor
/// a check, nor a copy.
typealias SectionCache = BoundedCache<SectionKey, [UInt8]>

/// A block's section: the block's hash and the section's kind.
struct SectionKey: Hashable, Sendable {
    var block: BlockHash
    var kind: Int
}

extension BoundedCache where Key == SectionKey, Value == [UInt8] {
    /// A cache of `capacity` bytes, keeping no section bigger than a quarter of it.
    convenience init(sectionBytes capacity: Int = 64 << 20) {
        self.init(capacity: capacity, largest: capacity / 4)
    }

    /// The raw bytes kept of section `kind` of the block whose hash is `block`.
    func section(_ kind: BlockSummary.SectionKind, of block: BlockHash) -> [UInt8]? {
        value(for: SectionKey(block: block, kind: kind.rawValue))
    }

    /// Keeps `bytes`, the raw section `kind` of block `block`.
    func keep(_ bytes: [UInt8], _ kind: BlockSummary.SectionKind, of block: BlockHash) {
        keep(bytes, bytes: bytes.capacity, for: SectionKey(block: block, kind: kind.rawValue))
    }
}
