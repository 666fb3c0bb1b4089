// swift-tools-version: 6.1
import PackageDescription

/// Compiles the fault injector and its tests: debug builds only, so no release build of TouchLogStorage carries it.
let faultInjection: [SwiftSetting] = [.define("TOUCHLOG_FAULT_INJECTION", .when(configuration: .debug))]
/// Compiles the fuzz targets of TouchLog, the fuzz driver and the tests replaying Fixtures/fuzz/: debug builds, and
/// the release build Tools/fuzz makes (which passes `-Xswiftc -DTOUCHLOG_FUZZ_TARGETS`).
let fuzzTargets: [SwiftSetting] = [.define("TOUCHLOG_FUZZ_TARGETS", .when(configuration: .debug))]

let package = Package(
    name: "touchlog",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "TouchLog", targets: ["TouchLog"]),
        .library(name: "TouchLogStorage", targets: ["TouchLogStorage"]),
        .library(name: "TouchLogServer", targets: ["TouchLogServer"]),
        .library(name: "TouchLogCluster", targets: ["TouchLogCluster"]),
        .executable(name: "touchlog", targets: ["TouchLogCLI"]),
        // The tools under Tools/ (touchlog-generate, -bench, -fuzz, -crash) are executable targets, not products:
        // `swift build --product touchlog-bench` builds one; a package depending on touchlog sees none of them.
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.0"),
        // Heap: the live audiences' queue of the next times a profile's membership can change.
        .package(url: "https://github.com/apple/swift-collections", from: "1.1.0"),
        // `touchlog serve`. Its default traits (swift-configuration support, full Foundation) are not needed.
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.0", traits: []),
        .package(url: "https://github.com/apple/swift-http-types", from: "1.0.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.0"),
        // Metrics: the libraries record through swift-metrics; `touchlog serve` exports them in Prometheus's format.
        .package(url: "https://github.com/apple/swift-metrics", from: "2.5.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.0.0"),
        // Test-only: a real HTTP client for the server's tests.
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.30.0"),
    ],
    targets: [
        .systemLibrary(
            name: "CTouchLogLZ4",
            pkgConfig: "liblz4",
            providers: [.apt(["liblz4-dev"]), .brew(["lz4"])]
        ),
        // XXH3 checksums of format-2 block summaries and sections (Debian: libxxhash-dev).
        .systemLibrary(
            name: "CTouchLogXXHash",
            pkgConfig: "libxxhash",
            providers: [.apt(["libxxhash-dev"]), .brew(["xxhash"])]
        ),
        // The NATS C client (Debian: libnats-dev): JetStream is the cluster's replicated log of record.
        .systemLibrary(
            name: "CTouchLogNATS",
            pkgConfig: "libnats",
            providers: [.apt(["libnats-dev"]), .brew(["cnats"])]
        ),
        // Test-only: SQLite is the independent reference the segment engine is checked against.
        .systemLibrary(
            name: "CTouchLogSQLite",
            path: "Tests/CTouchLogSQLite",
            pkgConfig: "sqlite3",
            providers: [.apt(["libsqlite3-dev"]), .brew(["sqlite"])]
        ),
        // Cache hints (a prefetch before a group of hash-index probes), which Swift has no spelling for.
        .target(name: "CTouchLogPlatform"),
        .target(
            name: "TouchLogStorage",
            dependencies: [
                "CTouchLogLZ4", "CTouchLogXXHash",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
            ],
            // The fault injector (FaultInjection.swift) exists only in debug builds, which the tests use.
            swiftSettings: faultInjection
        ),
        .target(
            name: "TouchLog",
            dependencies: [
                "TouchLogStorage", "CTouchLogPlatform", .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "HeapModule", package: "swift-collections"),
                .product(name: "DequeModule", package: "swift-collections"),
                // Ed25519 signatures and SHA-256 digests of audit records.
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: fuzzTargets
        ),
        // The HTTP API of `touchlog serve`, for services in other languages.
        .target(
            name: "TouchLogServer",
            dependencies: [
                "TouchLog", "TouchLogCluster", .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            resources: [.copy("openapi.yaml"), .copy("Console")]
        ),
        // Past one machine: partitions on NATS JetStream, nodes that apply them to local stores, scatter-gather queries.
        .target(
            name: "TouchLogCluster",
            dependencies: [
                "TouchLog", "TouchLogStorage", "CTouchLogNATS", .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
        .executableTarget(
            name: "TouchLogCLI",
            dependencies: [
                "TouchLog", "TouchLogStorage", "TouchLogServer", "TouchLogCluster",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ]
        ),
        // Tools (Tools/*): executable targets, not products.
        .executableTarget(
            name: "touchlog-generate",
            dependencies: [
                "TouchLog", "TouchLogRandom", .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "Tools/touchlog-generate"
        ),
        // In-process measurements for Tools/bench.
        .executableTarget(
            name: "touchlog-bench",
            dependencies: [
                "TouchLog", "TouchLogStorage", "TouchLogRandom", .product(name: "Crypto", package: "swift-crypto"),
            ],
            path: "Tools/touchlog-bench"
        ),
        // libFuzzer's driver, weakly declared: present only in the build Tools/fuzz makes.
        .systemLibrary(name: "CTouchLogFuzzer", path: "Tools/CTouchLogFuzzer"),
        // Feeds inputs to the fuzz targets (Tools/fuzz).
        .executableTarget(
            name: "touchlog-fuzz",
            dependencies: ["TouchLog", "TouchLogStorage", "CTouchLogFuzzer"],
            path: "Tools/touchlog-fuzz",
            swiftSettings: fuzzTargets
        ),
        // Kills a writer at random moments and checks the store after each kill (Tools/crash).
        .executableTarget(
            name: "touchlog-crash",
            dependencies: ["TouchLog", "TouchLogStorage", "TouchLogRandom"],
            path: "Tools/touchlog-crash"
        ),
        // Seeded randomness ("seed N" is the same stream in the generator, the crash harness and the tests).
        .target(name: "TouchLogRandom", path: "Tools/TouchLogRandom"),
        // What the test targets share: temporary directories, fixture paths, a settable clock, events as JSON Lines
        // (and TouchLogRandom, re-exported).
        .target(
            name: "TouchLogTestSupport", dependencies: ["TouchLog", "TouchLogRandom"], path: "Tests/TouchLogTestSupport"
        ),
        .testTarget(
            name: "TouchLogStorageTests", dependencies: ["TouchLogStorage", "TouchLogTestSupport"],
            swiftSettings: faultInjection),
        .testTarget(
            name: "TouchLogTests",
            dependencies: ["TouchLog", "TouchLogTestSupport", "CTouchLogSQLite"],
            swiftSettings: faultInjection + fuzzTargets
        ),
        .testTarget(name: "TouchLogCLITests", dependencies: ["TouchLog", "TouchLogTestSupport"]),
        // Every Swift example of the README and the DocC articles, compiled as a service would (only `import
        // TouchLog` and Foundation, with members visible only through what is imported).
        .testTarget(
            name: "TouchLogDocTests",
            dependencies: ["TouchLog", "TouchLogTestSupport"],
            swiftSettings: [.enableUpcomingFeature("MemberImportVisibility")]
        ),
        .testTarget(
            name: "TouchLogClusterTests",
            dependencies: [
                "TouchLogCluster", "TouchLog", "TouchLogTestSupport",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
            ]
        ),
        .testTarget(
            name: "TouchLogServerTests",
            dependencies: [
                "TouchLogServer", "TouchLog", "TouchLogTestSupport",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ]
        ),
    ],
    swiftLanguageModes: [.v6]
)
