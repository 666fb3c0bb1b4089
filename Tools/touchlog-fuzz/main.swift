// touchlog-fuzz: feeds inputs to one of touchlog's fuzz targets (see `FuzzTarget`).
//
//   touchlog-fuzz TARGET [libFuzzer options] [CORPUS_DIR...]   fuzz (only in the build Tools/fuzz makes)
//   touchlog-fuzz TARGET --replay FILE_OR_DIR...                run saved inputs once each (any build)
//
// A broken property or a crash aborts with the input named; libFuzzer then saves the input as crash-*.
//
// The fuzz targets exist only in debug builds and in the one Tools/fuzz makes (TOUCHLOG_FUZZ_TARGETS); a plain
// release build of this tool only says so.
import CTouchLogFuzzer
import Glibc
import TouchLog
import TouchLogStorage

#if !TOUCHLOG_FUZZ_TARGETS
    _ = "touchlog-fuzz: built without the fuzz targets; Tools/fuzz builds it with them\n".withCString {
        write(2, $0, strlen($0))
    }
    exit(69)
#else

    enum Fuzz {
        nonisolated(unsafe) static var target = FuzzTarget.blockPayload

        static let callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt = { data, size in
            if let problem = target.run(UnsafeRawBufferPointer(start: data, count: size)) {
                fail("\(target.rawValue): \(problem)", code: nil)
            }
            return 0
        }

        static func fail(_ message: String, code: Int32?) -> Never {
            let line = "touchlog-fuzz: \(message)\n"
            _ = line.withCString { write(2, $0, strlen($0)) }
            if let code { exit(code) }
            abort()
        }

        /// The files named, with directories expanded one level (a corpus directory), in name order.
        static func inputs(_ paths: [String]) -> [String] {
            paths.flatMap { path -> [String] in
                guard SystemFile.isDirectory(path), let names = try? SystemFile.list(path) else { return [path] }
                return names.filter { !$0.hasPrefix(".") }.sorted().map { path + "/" + $0 }
            }
        }

        static func read(_ path: String) -> [UInt8]? {
            guard let file = try? SystemFile.open(path, .readOnly) else { return nil }
            defer { file.close() }
            return try? file.read(at: 0, count: Int(try file.size()))
        }
    }

    let arguments = CommandLine.arguments
    let names = FuzzTarget.allCases.map(\.rawValue).joined(separator: ", ")
    // libFuzzer's -jobs/-fork children are started with the options only: they find the target in the environment.
    let inherited = getenv("TOUCHLOG_FUZZ_TARGET").flatMap { FuzzTarget(rawValue: String(cString: $0)) }
    let named = arguments.count >= 2 ? FuzzTarget(rawValue: arguments[1]) : nil
    guard let target = named ?? inherited else {
        Fuzz.fail(
            "usage: touchlog-fuzz TARGET [--replay FILE_OR_DIR... | libFuzzer options]; targets: \(names)", code: 64)
    }
    Fuzz.target = target
    setenv("TOUCHLOG_FUZZ_TARGET", target.rawValue, 1)

    if named != nil && arguments.count >= 3 && arguments[2] == "--replay" {
        var count = 0
        for path in Fuzz.inputs(Array(arguments.dropFirst(3))) {
            guard let bytes = Fuzz.read(path) else { Fuzz.fail("cannot read \(path)", code: 66) }
            if let problem = bytes.withUnsafeBytes({ target.run($0) }) { Fuzz.fail("\(path): \(problem)", code: 1) }
            count += 1
        }
        print("\(target.rawValue): \(count) input\(count == 1 ? "" : "s") ran, every property held")
        exit(0)
    }

    guard touchlog_fuzzer_is_linked() != 0 else {
        Fuzz.fail("this build has no libFuzzer; run Tools/fuzz, or use --replay", code: 64)
    }
    // libFuzzer parses argv itself: drop the target name.
    let first = named == nil ? 1 : 2
    var argv: [UnsafeMutablePointer<CChar>?] =
        [CommandLine.unsafeArgv[0]] + (first..<Int(CommandLine.argc)).map { CommandLine.unsafeArgv[$0] } + [nil]
    var argc = CInt(argv.count - 1)
    argv.withUnsafeMutableBufferPointer { buffer in
        var base: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = buffer.baseAddress
        exit(touchlog_fuzzer_run(&argc, &base, Fuzz.callback))
    }
#endif
