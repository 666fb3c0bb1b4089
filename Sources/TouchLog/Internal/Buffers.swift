extension UnsafeMutableBufferPointer {
    /// A new buffer holding a copy of `elements`; the caller deallocates it. (For tables read on hot paths, where an
    /// array's every use would retain and release it.)
    static func allocate(copying elements: [Element]) -> Self {
        let buffer = Self.allocate(capacity: elements.count)
        _ = buffer.initialize(from: elements)
        return buffer
    }
}
