import Foundation
import Testing
import TouchLogTestSupport

@testable import TouchLog

/// A parsed line: its event, or its problem as "COLUMN reason".
enum Parsed: Equatable {
    case event(Event)
    case problem(String)

    func get() throws -> Event {
        guard case .event(let event) = self else { throw ParseFailed() }
        return event
    }

    var failureText: String? {
        if case .problem(let text) = self { return text }
        return nil
    }
}

struct ParseFailed: Error {}

func describe(_ error: any Error) -> String {
    let problem = error as! FieldProblem
    return "\(problem.column.map(String.init) ?? "-") \(problem.reason)"
}

/// Parses one JSON line.
func parseJSON(_ line: String) -> Parsed {
    var batch = EventBatch()
    var bytes = Array(line.utf8)
    return parseJSON(bytes: &bytes, into: &batch)
}

func parseJSON(bytes: inout [UInt8], into batch: inout EventBatch) -> Parsed {
    do {
        try bytes.withUnsafeBytes { raw in try JSONEventParser.parse(raw, into: &batch) }
        return .event(batch.event(at: batch.count - 1))
    } catch {
        return .problem(describe(error))
    }
}
