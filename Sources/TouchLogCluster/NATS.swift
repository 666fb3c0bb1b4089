import CTouchLogNATS

/// A failure talking to NATS, with the C client's status and, for JetStream API errors, the server's error code.
public struct NATSError: Error, CustomStringConvertible, Sendable {
    public var message: String
    /// The C client's status (NATS_OK when the failure was found on this side).
    var status: natsStatus
    /// JetStream's error code (0 when none), such as 10059 for "stream not found".
    var jetStreamCode: Int

    init(_ what: String, status: natsStatus, jetStreamCode: jsErrCode = jsErrCode(0)) {
        var detail = String(cString: natsStatus_GetText(status))
        var last = natsStatus(0)
        // The thread's last error has the server's words, when it is this failure's (not an earlier one's).
        if let text = nats_GetLastError(&last), last == status, text.pointee != 0 {
            let lastText = String(cString: text)
            if !lastText.isEmpty && lastText != detail { detail = lastText }
        }
        self.message = "\(what): \(detail)"
        self.status = status
        self.jetStreamCode = Int(jetStreamCode.rawValue)
    }

    init(message: String) {
        self.message = message
        self.status = NATS_ERR
        self.jetStreamCode = 0
    }

    public var description: String { message }

    /// True when the server refused the request (a wrong revision, a key that exists, a missing stream), as opposed to
    /// the request not reaching it.
    var isRefusal: Bool { status == NATS_ERR || status == NATS_NOT_FOUND || jetStreamCode != 0 }
    var isNotFound: Bool { status == NATS_NOT_FOUND || jetStreamCode == 10059 || jetStreamCode == 10014 }
    var isTimeout: Bool { status == NATS_TIMEOUT }
    var isNoResponders: Bool { status == NATS_NO_RESPONDERS }
}

@inline(__always)
private func check(_ status: natsStatus, _ what: @autoclosure () -> String, _ code: jsErrCode = jsErrCode(0))
    throws(NATSError)
{
    if status != NATS_OK { throw NATSError(what(), status: status, jetStreamCode: code) }
}

/// Milliseconds of a duration (what most of the C client's timeouts take).
func milliseconds(_ duration: Duration) -> Int64 {
    duration.components.seconds * 1000 + duration.components.attoseconds / 1_000_000_000_000_000
}

/// Nanoseconds of a duration (what stream ages, KV TTLs and consumer timings take).
func nanoseconds(_ duration: Duration) -> Int64 {
    duration.components.seconds * 1_000_000_000 + duration.components.attoseconds / 1_000_000_000
}

/// A connection to a NATS system, with its JetStream context. The C client is thread-safe, so one connection serves
/// every task of a process.
public final class NATSConnection: @unchecked Sendable {
    /// The server URLs it was given.
    public let urls: [String]
    let connection: OpaquePointer
    let jetStream: OpaquePointer

    /// Connects to the first reachable server of `urls`; fails within about `timeout` per URL, naming them all.
    /// `reconnect`: keep reconnecting (to any server of the cluster) when an established connection drops.
    public init(urls: [String], name: String, timeout: Duration = .seconds(2), reconnect: Bool = true) throws(NATSError)
    {
        self.urls = urls
        var options: OpaquePointer?
        try check(natsOptions_Create(&options), "cannot set up a NATS connection")
        defer { natsOptions_Destroy(options) }
        let cStrings = CStringArray(urls)
        defer { cStrings.deallocate() }
        let status = natsOptions_SetServers(options, cStrings.pointers.baseAddress, Int32(cStrings.pointers.count))
        try check(status, "invalid NATS URL in \(urls.joined(separator: ","))")
        try check(natsOptions_SetName(options, name), "cannot name the NATS connection")
        try check(natsOptions_SetTimeout(options, milliseconds(timeout)), "cannot set the NATS timeout")
        try check(natsOptions_SetNoRandomize(options, true), "cannot set the NATS server order")
        try check(natsOptions_SetAllowReconnect(options, reconnect), "cannot set NATS reconnection")
        try check(natsOptions_SetMaxReconnect(options, reconnect ? -1 : 0), "cannot set NATS reconnection")
        try check(natsOptions_SetReconnectWait(options, 200), "cannot set NATS reconnection")
        try check(natsOptions_SetReconnectBufSize(options, 32 << 20), "cannot set NATS reconnection")
        var connection: OpaquePointer?
        let connected = natsConnection_Connect(&connection, options)
        guard connected == NATS_OK, let connection else {
            throw NATSError(
                message:
                    "cannot reach NATS at \(urls.joined(separator: ", ")) (\(String(cString: natsStatus_GetText(connected))))"
            )
        }
        var jsOptions = jsOptions()
        jsOptions_Init(&jsOptions)
        jsOptions.Wait = milliseconds(timeout) * 2
        var js: OpaquePointer?
        let status2 = natsConnection_JetStream(&js, connection, &jsOptions)
        guard status2 == NATS_OK, let js else {
            natsConnection_Destroy(connection)
            throw NATSError("cannot use JetStream at \(urls.joined(separator: ", "))", status: status2)
        }
        self.connection = connection
        self.jetStream = js
    }

    deinit {
        jsCtx_Destroy(jetStream)
        natsConnection_Destroy(connection)
    }

    /// Drains nothing: closes the connection now (subscriptions end, pending publishes are dropped).
    public func close() { natsConnection_Close(connection) }

    /// The URL of the server it is connected to now, if any.
    var connectedURL: String? {
        var buffer = [CChar](repeating: 0, count: 512)
        guard natsConnection_GetConnectedUrl(connection, &buffer, buffer.count) == NATS_OK else { return nil }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    // MARK: Core NATS

    /// Publishes `data` on `subject` (fire and forget), with `reply` as its reply subject.
    func publish(_ subject: String, reply: String? = nil, _ data: [UInt8]) throws(NATSError) {
        let status = data.withUnsafeBytes { bytes in
            if let reply {
                return natsConnection_PublishRequest(connection, subject, reply, bytes.baseAddress, Int32(bytes.count))
            }
            return natsConnection_Publish(connection, subject, bytes.baseAddress, Int32(bytes.count))
        }
        try check(status, "cannot publish on \(subject)")
    }

    /// Sends everything buffered to the server and waits for it to be processed (at most `timeout`).
    func flush(timeout: Duration = .seconds(5)) throws(NATSError) {
        try check(
            natsConnection_FlushTimeout(connection, milliseconds(timeout)), "NATS did not confirm within \(timeout)")
    }

    /// A new unique subject for replies.
    func newInbox() -> String {
        var inbox: UnsafeMutablePointer<natsInbox>?
        guard natsInbox_Create(&inbox) == NATS_OK, let inbox else {
            return "_INBOX.touchlog.\(UInt64.random(in: 0...UInt64.max))"
        }
        defer { natsInbox_Destroy(inbox) }
        return String(cString: inbox)
    }

    /// A synchronous subscription to `subject` (in queue group `queue` when given: one member of the group gets each
    /// message).
    func subscribe(_ subject: String, queue: String? = nil) throws(NATSError) -> NATSSubscription {
        var sub: OpaquePointer?
        let status =
            queue.map { natsConnection_QueueSubscribeSync(&sub, connection, subject, $0) }
            ?? natsConnection_SubscribeSync(&sub, connection, subject)
        guard status == NATS_OK, let sub else { throw NATSError("cannot subscribe to \(subject)", status: status) }
        return NATSSubscription(sub)
    }

    // MARK: JetStream streams

    struct StreamState: Sendable {
        var firstSequence: UInt64
        var lastSequence: UInt64
        var messages: UInt64
        /// Distinct subjects with messages (for a key-value bucket: keys, deleted ones until their markers age out).
        var subjects: Int
        var replicas: Int
        /// Server names of the stream's leader and replicas (empty for a single server without a cluster).
        var leader: String?
    }

    /// Creates the stream `name` on `subjects` with `replicas` copies (file storage, limits retention).
    func addStream(name: String, subjects: [String], replicas: Int, maxMessageBytes: Int32) throws(NATSError) {
        var config = jsStreamConfig()
        jsStreamConfig_Init(&config)
        let cSubjects = CStringArray(subjects)
        defer { cSubjects.deallocate() }
        var info: UnsafeMutablePointer<jsStreamInfo>?
        var code = jsErrCode(0)
        let status: natsStatus = name.withCString { cName in
            config.Name = cName
            config.Subjects = cSubjects.pointers.baseAddress
            config.SubjectsLen = Int32(cSubjects.pointers.count)
            config.Storage = js_FileStorage
            config.Retention = js_LimitsPolicy
            config.Replicas = Int64(replicas)
            config.MaxMsgSize = maxMessageBytes
            config.DenyDelete = false
            return js_AddStream(&info, jetStream, &config, nil, &code)
        }
        if info != nil { jsStreamInfo_Destroy(info) }
        try check(status, "cannot create the stream \(name)", code)
    }

    /// The stream's state, or nil when there is no such stream.
    func streamState(_ name: String) throws(NATSError) -> StreamState? {
        var info: UnsafeMutablePointer<jsStreamInfo>?
        var code = jsErrCode(0)
        let status = js_GetStreamInfo(&info, jetStream, name, nil, &code)
        if status != NATS_OK {
            let error = NATSError("cannot read the stream \(name)", status: status, jetStreamCode: code)
            if error.isNotFound { return nil }
            throw error
        }
        defer { jsStreamInfo_Destroy(info) }
        guard let info else { return nil }
        let state = info.pointee.State
        let leader = info.pointee.Cluster.flatMap { $0.pointee.Leader }.map { String(cString: $0) }
        return StreamState(
            firstSequence: state.FirstSeq, lastSequence: state.LastSeq, messages: state.Msgs,
            subjects: Int(state.NumSubjects),
            replicas: Int(info.pointee.Config?.pointee.Replicas ?? 1), leader: leader)
    }

    /// Publishes to a stream and waits for JetStream's acknowledgement; returns the message's stream sequence.
    @discardableResult
    func publishDurably(_ subject: String, _ data: [UInt8], timeout: Duration = .seconds(10)) throws(NATSError)
        -> UInt64
    {
        var ack: UnsafeMutablePointer<jsPubAck>?
        var code = jsErrCode(0)
        var options = jsPubOptions()
        jsPubOptions_Init(&options)
        options.MaxWait = milliseconds(timeout)
        let status = data.withUnsafeBytes {
            js_Publish(&ack, jetStream, subject, $0.baseAddress, Int32($0.count), &options, &code)
        }
        defer { if ack != nil { jsPubAck_Destroy(ack) } }
        try check(status, "JetStream did not acknowledge a message on \(subject)", code)
        return ack?.pointee.Sequence ?? 0
    }

    /// Publishes every message to its stream with up to `window` awaiting their acknowledgements at a time, and
    /// returns once JetStream has acknowledged all of them. Throws, saying how many were not acknowledged, when any
    /// was refused or not acknowledged within `timeout` (the others were).
    func publishDurably(
        _ messages: [(subject: String, payload: [UInt8])], window: Int = 32, timeout: Duration = .seconds(10)
    ) throws(NATSError) {
        final class Failures: @unchecked Sendable {
            // Written by the client's callback thread, read after js_PublishAsyncComplete returned.
            var count = 0
            var first: String?
        }
        let failures = Failures()
        var options = jsOptions()
        jsOptions_Init(&options)
        options.Wait = milliseconds(timeout)
        options.PublishAsync.MaxPending = Int64(window)
        options.PublishAsync.StallWait = milliseconds(timeout)
        options.PublishAsync.ErrHandlerClosure = Unmanaged.passUnretained(failures).toOpaque()
        options.PublishAsync.ErrHandler = { _, failure, closure in
            let failures = Unmanaged<Failures>.fromOpaque(closure!).takeUnretainedValue()
            failures.count += 1
            if failures.first == nil, let failure {
                let text =
                    failure.pointee.ErrText.map { String(cString: $0) }
                    ?? String(cString: natsStatus_GetText(failure.pointee.Err))
                failures.first = text
            }
        }
        var context: OpaquePointer?
        try check(natsConnection_JetStream(&context, connection, &options), "cannot use JetStream")
        defer { jsCtx_Destroy(context) }
        try withExtendedLifetime(failures) { () throws(NATSError) in
            var publishOptions = jsPubOptions()
            jsPubOptions_Init(&publishOptions)
            publishOptions.MaxWait = milliseconds(timeout)
            for (index, message) in messages.enumerated() {
                let status = message.payload.withUnsafeBytes {
                    js_PublishAsync(context, message.subject, $0.baseAddress, Int32($0.count), &publishOptions)
                }
                if status != NATS_OK {
                    _ = js_PublishAsyncComplete(context, &publishOptions)
                    throw NATSError(
                        "JetStream took \(index - failures.count) of \(messages.count) messages before failing",
                        status: status)
                }
            }
            let completed = js_PublishAsyncComplete(context, &publishOptions)
            if completed == NATS_TIMEOUT {
                var pending = natsMsgList()
                _ = js_PublishAsyncGetPendingList(&pending, context)
                let count = Int(pending.Count)
                natsMsgList_Destroy(&pending)
                throw NATSError(
                    message:
                        "JetStream did not acknowledge \(count + failures.count) of \(messages.count) messages within \(timeout)"
                )
            }
            try check(completed, "JetStream did not acknowledge every message")
            if failures.count > 0 {
                throw NATSError(
                    message:
                        "JetStream refused \(failures.count) of \(messages.count) messages (\(failures.first ?? "no reason given"))"
                )
            }
        }
    }

    /// Creates (or replaces) the durable pull consumer `durable` on `stream`, delivering from `startSequence` on, and
    /// binds a subscription to it.
    func pullConsumer(stream: String, durable: String, startSequence: UInt64, ackWait: Duration) throws(NATSError)
        -> NATSPullConsumer
    {
        var code = jsErrCode(0)
        _ = js_DeleteConsumer(jetStream, stream, durable, nil, &code)
        var config = jsConsumerConfig()
        jsConsumerConfig_Init(&config)
        var info: UnsafeMutablePointer<jsConsumerInfo>?
        let status: natsStatus = durable.withCString { cDurable in
            config.Durable = cDurable
            config.AckPolicy = js_AckExplicit
            config.AckWait = nanoseconds(ackWait)
            config.DeliverPolicy = js_DeliverByStartSequence
            config.OptStartSeq = max(1, startSequence)
            config.MaxAckPending = 100_000
            return js_AddConsumer(&info, jetStream, stream, &config, nil, &code)
        }
        if info != nil { jsConsumerInfo_Destroy(info) }
        try check(status, "cannot create the consumer \(durable) on \(stream)", code)
        var subOptions = jsSubOptions()
        jsSubOptions_Init(&subOptions)
        var sub: OpaquePointer?
        let bound: natsStatus = stream.withCString { cStream in
            durable.withCString { cDurable in
                subOptions.Stream = cStream
                subOptions.Consumer = cDurable
                return js_PullSubscribe(&sub, jetStream, nil, cDurable, nil, &subOptions, &code)
            }
        }
        guard bound == NATS_OK, let sub else {
            throw NATSError("cannot bind to the consumer \(durable) on \(stream)", status: bound, jetStreamCode: code)
        }
        return NATSPullConsumer(sub, jetStream: self)
    }

    /// Deletes the durable consumer if it exists.
    func deleteConsumer(stream: String, durable: String) {
        var code = jsErrCode(0)
        _ = js_DeleteConsumer(jetStream, stream, durable, nil, &code)
    }

    // MARK: Key-value buckets

    /// The bucket `name`, or nil when it does not exist.
    func keyValue(_ name: String) throws(NATSError) -> NATSKeyValue? {
        var kv: OpaquePointer?
        let status = js_KeyValue(&kv, jetStream, name)
        if status == NATS_NOT_FOUND { return nil }
        guard status == NATS_OK, let kv else {
            let error = NATSError("cannot open the bucket \(name)", status: status)
            if error.isNotFound { return nil }
            throw error
        }
        return NATSKeyValue(kv, name: name)
    }

    /// Creates the bucket `name` (or opens it when it exists with the same settings). `ttl`: entries not written
    /// for that long vanish.
    func createKeyValue(_ name: String, history: Int = 1, ttl: Duration? = nil, replicas: Int) throws(NATSError)
        -> NATSKeyValue
    {
        var config = kvConfig()
        kvConfig_Init(&config)
        var kv: OpaquePointer?
        let status: natsStatus = name.withCString { cName in
            config.Bucket = cName
            config.History = UInt8(history)
            config.TTL = ttl.map(nanoseconds) ?? 0
            config.Replicas = Int32(replicas)
            config.StorageType = js_FileStorage
            return js_CreateKeyValue(&kv, jetStream, &config)
        }
        guard status == NATS_OK, let kv else { throw NATSError("cannot create the bucket \(name)", status: status) }
        return NATSKeyValue(kv, name: name)
    }
}

/// A message received from a subscription; the C message is freed with it.
final class NATSMessage: @unchecked Sendable {
    let pointer: OpaquePointer

    init(_ pointer: OpaquePointer) { self.pointer = pointer }
    deinit { natsMsg_Destroy(pointer) }

    var data: [UInt8] {
        let count = Int(natsMsg_GetDataLength(pointer))
        guard count > 0, let base = natsMsg_GetData(pointer) else { return [] }
        return Array(UnsafeRawBufferPointer(start: base, count: count))
    }

    var subject: String { String(cString: natsMsg_GetSubject(pointer)) }
    var reply: String? { natsMsg_GetReply(pointer).map { String(cString: $0) } }

    /// The stream sequence and the time (ms since the epoch) JetStream stored the message at.
    func jetStreamPosition() throws(NATSError) -> (sequence: UInt64, timestamp: Int64) {
        var meta: UnsafeMutablePointer<jsMsgMetaData>?
        try check(natsMsg_GetMetaData(&meta, pointer), "a message without JetStream metadata on \(subject)")
        defer { jsMsgMetaData_Destroy(meta) }
        guard let meta else { throw NATSError(message: "a message without JetStream metadata on \(subject)") }
        return (meta.pointee.Sequence.Stream, meta.pointee.Timestamp / 1_000_000)
    }

    /// Acknowledges the message to JetStream (without waiting: what was applied is known from the local store).
    func acknowledge() throws(NATSError) {
        try check(natsMsg_Ack(pointer, nil), "cannot acknowledge a message on \(subject)")
    }
}

/// A synchronous subscription: `next` waits for the next message.
final class NATSSubscription: @unchecked Sendable {
    private let pointer: OpaquePointer

    init(_ pointer: OpaquePointer) { self.pointer = pointer }
    deinit { natsSubscription_Destroy(pointer) }

    /// The next message, or nil when none came within `timeout`. Throws with status NATS_NO_RESPONDERS when a request
    /// this subscription is the reply subject of reached no subscriber.
    func next(timeout: Duration) throws(NATSError) -> NATSMessage? {
        var message: OpaquePointer?
        let status = natsSubscription_NextMsg(&message, pointer, max(1, milliseconds(timeout)))
        if status == NATS_TIMEOUT { return nil }
        guard status == NATS_OK, let message else { throw NATSError("cannot receive", status: status) }
        return NATSMessage(message)
    }

    func unsubscribe() { _ = natsSubscription_Unsubscribe(pointer) }
}

/// A subscription bound to a durable pull consumer.
final class NATSPullConsumer: @unchecked Sendable {
    private let pointer: OpaquePointer
    /// Keeps the connection (and its JetStream context) alive while the subscription is.
    private let owner: NATSConnection

    init(_ pointer: OpaquePointer, jetStream owner: NATSConnection) {
        self.pointer = pointer
        self.owner = owner
    }

    deinit { natsSubscription_Destroy(pointer) }

    /// Up to `batch` messages; waits at most `timeout` for the first. Empty when none came.
    func fetch(batch: Int, timeout: Duration) throws(NATSError) -> [NATSMessage] {
        var list = natsMsgList()
        var code = jsErrCode(0)
        let status = natsSubscription_Fetch(&list, pointer, Int32(batch), milliseconds(timeout), &code)
        if status == NATS_TIMEOUT { return [] }
        try check(status, "cannot fetch from the stream", code)
        var messages: [NATSMessage] = []
        for i in 0..<Int(list.Count) {
            if let message = list.Msgs[i] {
                messages.append(NATSMessage(message))
                list.Msgs[i] = nil
            }
        }
        natsMsgList_Destroy(&list)
        return messages
    }

    /// Stops the subscription, leaving the durable consumer on the server.
    func unsubscribe() { _ = natsSubscription_Drain(pointer) }
}

/// A JetStream key-value bucket.
final class NATSKeyValue: @unchecked Sendable {
    private let pointer: OpaquePointer
    let name: String

    init(_ pointer: OpaquePointer, name: String) {
        self.pointer = pointer
        self.name = name
    }

    deinit { kvStore_Destroy(pointer) }

    struct Entry: Sendable {
        var value: [UInt8]
        var revision: UInt64
        /// When the entry was written, in ms since the epoch.
        var created: Int64
    }

    /// The key's value, or nil when it has none (never written, deleted, or expired).
    func get(_ key: String) throws(NATSError) -> Entry? {
        var entry: OpaquePointer?
        let status = kvStore_Get(&entry, pointer, key)
        if status == NATS_NOT_FOUND { return nil }
        try check(status, "cannot read \(key) from the bucket \(name)")
        guard let entry else { return nil }
        defer { kvEntry_Destroy(entry) }
        let count = Int(kvEntry_ValueLen(entry))
        let value = count > 0 ? Array(UnsafeRawBufferPointer(start: kvEntry_Value(entry), count: count)) : []
        return Entry(value: value, revision: kvEntry_Revision(entry), created: kvEntry_Created(entry) / 1_000_000)
    }

    /// Writes the key only if it has no value: its revision, or nil when it has one (someone else created it).
    func create(_ key: String, _ value: [UInt8]) throws(NATSError) -> UInt64? {
        var revision: UInt64 = 0
        let status = value.withUnsafeBytes { kvStore_Create(&revision, pointer, key, $0.baseAddress, Int32($0.count)) }
        if status == NATS_OK { return revision }
        let error = NATSError("cannot create \(key) in the bucket \(name)", status: status)
        if error.isRefusal { return nil }
        throw error
    }

    /// Writes the key only if its revision is still `last`: the new revision, or nil when it changed (or vanished).
    func update(_ key: String, _ value: [UInt8], last: UInt64) throws(NATSError) -> UInt64? {
        var revision: UInt64 = 0
        let status = value.withUnsafeBytes {
            kvStore_Update(&revision, pointer, key, $0.baseAddress, Int32($0.count), last)
        }
        if status == NATS_OK { return revision }
        let error = NATSError("cannot update \(key) in the bucket \(name)", status: status)
        if error.isRefusal { return nil }
        throw error
    }

    /// Writes the key whatever it holds.
    @discardableResult
    func put(_ key: String, _ value: [UInt8]) throws(NATSError) -> UInt64 {
        var revision: UInt64 = 0
        try check(
            value.withUnsafeBytes { kvStore_Put(&revision, pointer, key, $0.baseAddress, Int32($0.count)) },
            "cannot write \(key) to the bucket \(name)")
        return revision
    }

    func delete(_ key: String) throws(NATSError) {
        try check(kvStore_Delete(pointer, key), "cannot delete \(key) from the bucket \(name)")
    }

    /// Every key with a value.
    func keys() throws(NATSError) -> [String] {
        var list = kvKeysList()
        let status = kvStore_Keys(&list, pointer, nil)
        if status == NATS_NOT_FOUND { return [] }
        try check(status, "cannot list the bucket \(name)")
        defer { kvKeysList_Destroy(&list) }
        return (0..<Int(list.Count)).compactMap { list.Keys[$0].map { String(cString: $0) } }
    }
}

/// Copies of Swift strings as NUL-terminated C strings, with an array of pointers to them, for the C calls that take a
/// `const char **`; ``deallocate()`` frees them.
struct CStringArray {
    let pointers: UnsafeMutableBufferPointer<UnsafePointer<CChar>?>

    init(_ strings: [String]) {
        pointers = .allocate(capacity: strings.count)
        for (i, string) in strings.enumerated() {
            let utf8 = Array(string.utf8CString)
            let copy = UnsafeMutablePointer<CChar>.allocate(capacity: utf8.count)
            copy.initialize(from: utf8, count: utf8.count)
            pointers[i] = UnsafePointer(copy)
        }
    }

    func deallocate() {
        for pointer in pointers { pointer.map { UnsafeMutablePointer(mutating: $0).deallocate() } }
        pointers.deallocate()
    }
}
