import Foundation
import TouchLog

/// What the Swift examples of the README and the DocC articles take as given (a store, a definition's JSON, a
/// service's own functions), so that each compiles as written (`DocSnippets.swift`). None of them is ever run.
final class SnippetContext: Sendable {
    let store: TouchLogStore
    let jsonLines = #"{"time":"2022-06-01T10:21:14.250Z","profile":"p-123","type":"view","touchpoint":"t"}"#
    let body = "time,profile,type,touchpoint,value\n2022-06-01T10:21:14.250Z,p-123,click,t,\n"
    let definitionJSON = #"{"name":"s","match":"all","rules":[{"interaction":"conversion"}]}"#
    let lastSeen: UInt64 = 0
    let june1: Int64 = 1_654_041_600_000
    let june15: Int64 = 1_655_251_200_000
    let july31: Int64 = 1_659_225_600_000
    let adPlatform = AdPlatform()

    init(store: TouchLogStore) { self.store = store }

    func forward(_ event: StoredEvent) async throws {}
    func process(_ event: StoredEvent) async throws {}
    func loadCheckpoint() async throws -> UInt64 { 0 }
    func saveCheckpoint(_ offset: UInt64) async throws {}

    /// An ad platform's audience API.
    struct AdPlatform: Sendable {
        func add(_ profiles: [String]) async throws {}
        func remove(_ profiles: [String]) async throws {}
    }
}
