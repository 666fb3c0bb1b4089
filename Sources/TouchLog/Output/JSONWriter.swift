/// A scalar the ``JSONWriter`` can write.
package protocol JSONScalar {
    func write(to out: inout [UInt8])
}

extension String: JSONScalar {
    package func write(to out: inout [UInt8]) { EventJSON.appendString(self, to: &out) }
}

extension Int: JSONScalar {
    package func write(to out: inout [UInt8]) { out.append(contentsOf: String(self).utf8) }
}

extension UInt64: JSONScalar {
    package func write(to out: inout [UInt8]) { out.append(contentsOf: String(self).utf8) }
}

extension Bool: JSONScalar {
    package func write(to out: inout [UInt8]) { out.append(contentsOf: (self ? "true" : "false").utf8) }
}

extension Double: JSONScalar {
    package func write(to out: inout [UInt8]) { out.append(contentsOf: EventJSON.formatNumber(self).utf8) }
}

/// A time written as RFC 3339 UTC with milliseconds, as everywhere in touchlog's output.
package struct JSONTime: JSONScalar {
    package var milliseconds: Int64
    package init(_ milliseconds: Int64) { self.milliseconds = milliseconds }
    package func write(to out: inout [UInt8]) { EventJSON.appendString(Timestamp.format(milliseconds), to: &out) }
}

/// Writes a JSON document front to back, without building a tree first: responses can hold a million members. The
/// CLI and the server write every JSON shape they share with it (``JSONShapes``), so the two print the same.
///
/// ```swift
/// var out = JSONWriter()
/// out.object { $0.field("count", 2); $0.field("members") { $0.array(["a", "b"]) { $0.element($1) } } }
/// ```
package struct JSONWriter {
    package init() {}

    package private(set) var bytes: [UInt8] = []
    /// Per open object or array: whether something was written in it (so the next item needs a comma).
    private var nonEmpty: [Bool] = []

    private mutating func separate() {
        if nonEmpty.last == true { bytes.append(UInt8(ascii: ",")) }
        if !nonEmpty.isEmpty { nonEmpty[nonEmpty.count - 1] = true }
    }

    private mutating func key(_ name: String) {
        separate()
        EventJSON.appendString(name, to: &bytes)
        bytes.append(UInt8(ascii: ":"))
    }

    /// An object; `body` writes its fields.
    package mutating func object(_ body: (inout JSONWriter) -> Void) {
        bytes.append(UInt8(ascii: "{"))
        nonEmpty.append(false)
        body(&self)
        nonEmpty.removeLast()
        bytes.append(UInt8(ascii: "}"))
    }

    /// An array of `items`; `body` writes each one (with ``element(_:)`` or ``object(_:)``).
    package mutating func array<S: Sequence>(_ items: S, _ body: (inout JSONWriter, S.Element) -> Void) {
        bytes.append(UInt8(ascii: "["))
        nonEmpty.append(false)
        for item in items {
            if nonEmpty.last == true { bytes.append(UInt8(ascii: ",")) }
            nonEmpty[nonEmpty.count - 1] = true
            let depth = nonEmpty.count
            body(&self, item)
            precondition(nonEmpty.count == depth)
        }
        nonEmpty.removeLast()
        bytes.append(UInt8(ascii: "]"))
    }

    /// An array element that is a scalar.
    package mutating func element(_ value: some JSONScalar) {
        value.write(to: &bytes)
    }

    /// A field with a scalar value (`null` for nil).
    package mutating func field(_ name: String, _ value: (some JSONScalar)?) {
        key(name)
        if let value { value.write(to: &bytes) } else { bytes.append(contentsOf: "null".utf8) }
    }

    /// A field whose value `body` writes (an object or array).
    package mutating func field(_ name: String, _ body: (inout JSONWriter) -> Void) {
        key(name)
        let depth = nonEmpty.count
        body(&self)
        precondition(nonEmpty.count == depth)
    }

    /// A field holding an array of strings.
    package mutating func field(_ name: String, strings: [String]) {
        field(name) { $0.array(strings) { $0.element($1) } }
    }

    /// A JSON document that is already written (a segment definition's canonical JSON).
    package mutating func field(_ name: String, raw: String) {
        key(name)
        bytes.append(contentsOf: raw.utf8)
    }
}
