import Foundation
import Testing
import TouchLogTestSupport

@testable import TouchLog

@Suite struct CSVEventParserTests {
    func parse(_ csv: String) -> [Parsed] {
        let records = csv.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        let header = Array(records[0].utf8)
        let parser: CSVEventParser
        do {
            parser = try header.withUnsafeBytes { raw in try CSVEventParser(header: raw) }
        } catch {
            return [.problem("header: " + (error as! FieldProblem).reason)]
        }
        return records.dropFirst().map { record in
            var batch = EventBatch()
            let bytes = Array(record.utf8)
            do {
                try bytes.withUnsafeBytes { raw in try parser.parse(raw, into: &batch) }
                return .event(batch.event(at: 0))
            } catch {
                return .problem(describe(error))
            }
        }
    }

    @Test func quotedFieldsColumnOrderAndOptionalColumns() throws {
        let results = parse(
            #"""
            type,touchpoint,extra,profile,time,value
            click,"summer, ""2022""",x,p-1,2022-06-01T10:21:14.250Z,
            conversion,,,p-2,1654070400000,59.90
            """#)
        #expect(
            try results[0].get()
                == Event(time: 1_654_078_874_250, profile: "p-1", type: .click, touchpoint: "summer, \"2022\""))
        #expect(try results[1].get() == Event(time: 1_654_070_400_000, profile: "p-2", type: .conversion, value: 59.9))
    }

    @Test func badRecordsAndHeadersAreReported() {
        let results = parse(
            #"""
            time,profile,type,touchpoint,value
            2022-06-01T10:21:14Z,p,view
            2022-06-01T10:21:14Z,p,view,,
            nope,p,view,t,
            2022-06-01T10:21:14Z,p,view,t,abc
            2022-06-01T10:21:14Z,"p,view,t,
            2022-06-01T10:21:14Z,p"x,view,t,
            2022-06-01T10:21:14Z,,view,t,
            """#)
        #expect(
            results.map { $0.failureText ?? "ok" } == [
                "- expected 5 fields as in the header, found 3",
                "- touchpoint is required for a view",
                "1 bad time \"nope\": expected RFC 3339 (2022-06-01T10:21:14.250Z) or epoch milliseconds",
                "31 value \"abc\" is not a finite number",
                "22 unterminated quoted field",
                "23 quote inside an unquoted field",
                "22 profile is empty",
            ])
        #expect(
            parse("time,profile,touchpoint\n").first?.failureText
                == "header: the CSV header has no \"type\" column (expected time,profile,type,touchpoint,value)")
        #expect(parse("time,profile,type,time\n").first?.failureText?.contains("duplicate column") == true)
    }
}
