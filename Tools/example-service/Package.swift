// swift-tools-version: 6.1
// An example service that embeds touchlog (see README.md here). A service outside this repository names the package
// by URL and version instead of by path:
//     .package(url: "https://github.com/OWNER/touchlog", from: "0.1.0")
import PackageDescription

let package = Package(
    name: "audience-sync",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(name: "touchlog", path: "../..")
    ],
    targets: [
        .executableTarget(
            name: "AudienceSync",
            dependencies: [.product(name: "TouchLog", package: "touchlog")]
        )
    ],
    swiftLanguageModes: [.v6]
)
