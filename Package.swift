// swift-tools-version: 6.0
import PackageDescription

let package = Package(
    name: "touchlog",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "TouchLog", targets: ["TouchLog"]),
        .library(name: "TouchLogStorage", targets: ["TouchLogStorage"]),
        .executable(name: "touchlog", targets: ["TouchLogCLI"]),
        .executable(name: "touchlog-generate", targets: ["TouchLogGenerate"]),
        .executable(name: "touchlog-bench", targets: ["TouchLogBench"]),
        .executable(name: "touchlog-fuzz", targets: ["TouchLogFuzz"]),
        .executable(name: "touchlog-crash", targets: ["TouchLogCrash"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.0"),
    ],
    targets: [
        .systemLibrary(
            name: "CTouchLogLZ4",
            pkgConfig: "liblz4",
            providers: [.apt(["liblz4-dev"]), .brew(["lz4"])]
        ),
        // Test-only: SQLite is the independent reference the segment engine is checked against.
        .systemLibrary(
            name: "CTouchLogSQLite",
            pkgConfig: "sqlite3",
            providers: [.apt(["libsqlite3-dev"]), .brew(["sqlite"])]
        ),
        .target(
            name: "TouchLogStorage",
            dependencies: ["CTouchLogLZ4", .product(name: "Crypto", package: "swift-crypto")]
        ),
        .target(name: "TouchLog", dependencies: ["TouchLogStorage"]),
        .executableTarget(
            name: "TouchLogCLI",
            dependencies: ["TouchLog", .product(name: "ArgumentParser", package: "swift-argument-parser")]
        ),
        .executableTarget(
            name: "TouchLogGenerate",
            dependencies: ["TouchLog", "TouchLogTestSupport", .product(name: "ArgumentParser", package: "swift-argument-parser")]
        ),
        // In-process measurements for Tools/bench.
        .executableTarget(name: "TouchLogBench", dependencies: ["TouchLog"]),
        // libFuzzer's driver, weakly declared: present only in the build Tools/fuzz makes.
        .systemLibrary(name: "CTouchLogFuzzer"),
        // Feeds inputs to the fuzz targets of the TouchLog module (Tools/fuzz).
        .executableTarget(name: "TouchLogFuzz", dependencies: ["TouchLog", "TouchLogStorage", "CTouchLogFuzzer"]),
        // Kills a writer at random moments and checks the store after each kill (Tools/crash).
        .executableTarget(name: "TouchLogCrash", dependencies: ["TouchLog", "TouchLogStorage", "TouchLogTestSupport"]),
        // Deterministic randomness, temporary directories and fixture paths for the tests and the generator.
        .target(name: "TouchLogTestSupport"),
        .testTarget(name: "TouchLogStorageTests", dependencies: ["TouchLogStorage", "TouchLogTestSupport"]),
        .testTarget(name: "TouchLogTests", dependencies: ["TouchLog", "TouchLogTestSupport", "CTouchLogSQLite"]),
        .testTarget(name: "TouchLogCLITests", dependencies: ["TouchLog", "TouchLogTestSupport"]),
    ],
    swiftLanguageModes: [.v6]
)
