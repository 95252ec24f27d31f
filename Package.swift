// swift-tools-version:6.1
import PackageDescription

let package = Package(
    name: "swift-rcu",
    products: [
        .library(name: "RCU", targets: ["RCU"]),
        .library(name: "RCUCollections", targets: ["RCUCollections"]),
        .executable(name: "rcu-stress", targets: ["rcu-stress"]),
    ],
    dependencies: [
        // rcu-stress's command line only; no library product depends on it.
        // 1.8.x: rcu-stress folds its error messages into one line
        // (Commands/RCUStress.swift), so a new minor version is taken on purpose.
        .package(url: "https://github.com/apple/swift-argument-parser", .upToNextMinor(from: "1.8.0")),
    ],
    targets: [
        // C: rseq critical sections, membarrier, futex, CPU count. The only
        // target with asm or syscalls.
        .target(name: "_RCUShims"),
        // The library. Depends on nothing but the toolchain and _RCUShims.
        .target(name: "RCU", dependencies: ["_RCUShims"]),
        // RCU-protected containers: RCUHashMap and RCUList. Pure Swift on
        // top of RCU; no unsafe flags, no other dependency.
        .target(name: "RCUCollections", dependencies: ["RCU"]),
        // liburcu, for rcu-stress only (the reference oracle). Never a
        // dependency of a library product.
        .systemLibrary(
            name: "CLiburcu",
            path: "Stress/CLiburcu",
            pkgConfig: "liburcu-memb",
            providers: [.apt(["liburcu-dev"])]
        ),
        .executableTarget(
            name: "rcu-stress",
            dependencies: [
                "RCU", "RCUCollections", "CLiburcu",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "Stress/rcu-stress"
        ),
        // Threads, flags, bounded waits and the domain modes every
        // behavioural test runs in; shared by both test targets.
        .target(name: "RCUTestSupport", dependencies: ["RCU", "_RCULSanDefaults"], path: "Tests/Support"),
        // LeakSanitizer's default suppressions for the test bundle (only the
        // toolchain's XCTest harness); see Tests/LSanDefaults/lsan_defaults.c.
        .target(name: "_RCULSanDefaults", path: "Tests/LSanDefaults"),
        .testTarget(name: "RCUTests", dependencies: ["RCU", "RCUTestSupport"]),
        .testTarget(name: "RCUCollectionsTests", dependencies: ["RCUCollections", "RCU", "RCUTestSupport"]),
    ],
    swiftLanguageModes: [.v6]
)
