// swift-tools-version: 6.1
import PackageDescription

let package = Package(
    name: "ferry",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "LiveUpdate", targets: ["LiveUpdate"]),
        .library(name: "LiveUpdateEmulator", targets: ["LiveUpdateEmulator"]),
        .library(name: "ServiceKit", targets: ["ServiceKit"]),
        .executable(name: "ferryctl", targets: ["ferryctl"]),
        .executable(name: "ferryd", targets: ["ferryd"]),
        // Not an API: what the fuzzers in Fuzz/ (a separate package) drive. Nothing here uses it.
        .library(name: "FerryFuzzTargets", targets: ["FerrySystem", "FerryJSON", "FDStore", "Supervisor", "FerryControl", "Orchestrator"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-system", from: "1.4.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        // The Prometheus exposition format (it brings swift-metrics and swift-atomics, no swift-nio).
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
    ],
    targets: [
        // Layer 0: uAPI structs, wrappers for variadic calls and macros, GNU-only calls.
        .target(name: "CFerry"),
        // Layer 1: syscalls with typed errors, owned fds, memfds, unix sockets, epoll.
        .target(
            name: "FerrySystem",
            dependencies: ["CFerry", .product(name: "SystemPackage", package: "swift-system")]
        ),
        // Any-value JSON and a small strict parser: Varlink parameters, the LUO mapping, reports.
        .target(name: "FerryJSON"),
        // Layer 2: /dev/liveupdate as a Swift API over two backends (kernel, emulator client).
        .target(
            name: "LiveUpdate",
            dependencies: ["CFerry", "FerrySystem", .product(name: "SystemPackage", package: "swift-system")]
        ),
        // The emulated kernel and the socket server that plays /dev/liveupdate.
        .target(
            name: "LiveUpdateEmulator",
            dependencies: [
                "CFerry", "FerrySystem", "LiveUpdate",
                .product(name: "SystemPackage", package: "swift-system"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // What a service imports: sd_notify (store, remove, barrier, ready), LISTEN_FDS with
        // names, and LUO sessions of its own.
        .target(
            name: "ServiceKit",
            dependencies: ["CFerry", "FerrySystem", "FerryControl", "LiveUpdate", .product(name: "SystemPackage", package: "swift-system")]
        ),
        // Per-unit fd stores with systemd's rules, and their serialized forms.
        .target(
            name: "FDStore",
            dependencies: ["CFerry", "FerrySystem", "FerryJSON", "LiveUpdate", .product(name: "SystemPackage", package: "swift-system")]
        ),
        // Units, processes, the notify socket: the service supervisor.
        .target(
            name: "Supervisor",
            dependencies: [
                "CFerry", "FerrySystem", "FDStore", "LiveUpdate",
                .product(name: "SystemPackage", package: "swift-system"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // What a live update and the restore after it report, as ferryd writes and ferryctl reads it.
        .target(name: "LiveUpdateReports"),
        // The live update: stop, serialize, preserve, kexec, rollback, restore, rehearsal.
        .target(
            name: "Orchestrator",
            dependencies: [
                "CFerry", "FerrySystem", "FerryJSON", "FDStore", "Supervisor", "LiveUpdate", "LiveUpdateReports",
                .product(name: "SystemPackage", package: "swift-system"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // What an update looks like as a picture: the timeline SVG drawn from a history record.
        .target(name: "UpdateTimeline", dependencies: ["LiveUpdateReports"]),
        // Beside the orchestrator: the update history (state directory, carried across kexecs),
        // the Prometheus metrics (textfile collector) and the io.ferry.Observe interface.
        .target(
            name: "Observability",
            dependencies: [
                "FerrySystem", "FerryJSON", "FerryControl", "FDStore", "LiveUpdate", "Supervisor", "Orchestrator",
                "LiveUpdateReports", "ControlServer",
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "SystemPackage", package: "swift-system"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // The control protocol as a client sees it: Varlink's codec and client, Ferry's version.
        // All ferryctl needs; it links nothing of the daemon.
        .target(
            name: "FerryControl",
            dependencies: ["FerrySystem", "FerryJSON", .product(name: "SystemPackage", package: "swift-system")]
        ),
        // ferryd's side of the control socket: the Varlink server and io.ferry.Manager bound to
        // the supervisor and the orchestrator.
        .target(
            name: "ControlServer",
            dependencies: [
                "CFerry", "FerrySystem", "FerryJSON", "FerryControl", "FDStore", "Supervisor", "Orchestrator",
                "LiveUpdate", "LiveUpdateReports",
                .product(name: "SystemPackage", package: "swift-system"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // Beside the orchestrator: LUO sessions for processes ferryd did not start (io.ferry.Broker
        // on broker.sock), their policy and quotas, carried across a kexec, accounted after it.
        .target(
            name: "Broker",
            dependencies: [
                "CFerry", "FerrySystem", "FerryJSON", "FerryControl", "LiveUpdate",
                .product(name: "SystemPackage", package: "swift-system"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // The conformance table: kernel-luo.md's rules as cases, run against either backend.
        .target(
            name: "LiveUpdateConformance",
            dependencies: ["CFerry", "FerrySystem", "LiveUpdate", .product(name: "SystemPackage", package: "swift-system")]
        ),
        .executableTarget(
            name: "ferryd",
            dependencies: [
                "CFerry", "FerrySystem", "FerryJSON", "FDStore", "Supervisor", "FerryControl", "ControlServer",
                "Orchestrator", "LiveUpdate", "LiveUpdateReports", "ServiceKit", "Observability", "Broker",
                .product(name: "SystemPackage", package: "swift-system"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // Benchmarks print figures next to a baseline from the same run; not tests.
        .executableTarget(
            name: "ferry-bench",
            dependencies: [
                "FerrySystem", "FerryJSON", "FerryControl", "LiveUpdate", "LiveUpdateEmulator", "LiveUpdateReports", "ferryd",
                "Observability",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "SystemPackage", package: "swift-system"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Benchmarks/ferry-bench"
        ),
        .executableTarget(
            name: "ferryctl",
            dependencies: [
                "FerrySystem", "FerryJSON", "LiveUpdate", "LiveUpdateEmulator", "LiveUpdateConformance", "FerryControl",
                "LiveUpdateReports", "ServiceKit", "UpdateTimeline",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "SystemPackage", package: "swift-system"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // Shared by the test targets: child processes, a ferryd under test, temporary folders.
        .target(
            name: "FerryTestSupport",
            dependencies: [
                "FerrySystem", "FerryJSON", "LiveUpdate", "LiveUpdateEmulator", "FerryControl",
                .product(name: "SystemPackage", package: "swift-system"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Tests/FerryTestSupport"
        ),
        .testTarget(
            name: "SupervisorTests",
            dependencies: ["Supervisor", "FDStore", "FerrySystem", "FerryJSON", "FerryControl", "ControlServer", "Orchestrator",
                           "LiveUpdateReports", "FerryTestSupport", "ferryd", "ferryctl", "LiveUpdate", "LiveUpdateEmulator",
                           "Broker", "ServiceKit"],
            exclude: []
        ),
        .testTarget(
            name: "FerrySystemTests",
            dependencies: ["FerrySystem", "CFerry", .product(name: "SystemPackage", package: "swift-system")]
        ),
        .testTarget(name: "FerryJSONTests", dependencies: ["FerryJSON"]),
        .testTarget(
            name: "ObservabilityTests",
            dependencies: ["Observability", "UpdateTimeline", "LiveUpdateReports", "FerryJSON", "FerrySystem",
                           "FerryTestSupport", .product(name: "Logging", package: "swift-log")]
        ),
        .testTarget(
            name: "LiveUpdateTests",
            dependencies: ["LiveUpdate", "CFerry", "FerrySystem", .product(name: "SystemPackage", package: "swift-system")]
        ),
        .testTarget(
            name: "LiveUpdateEmulatorTests",
            dependencies: [
                "LiveUpdateEmulator", "LiveUpdate", "LiveUpdateConformance", "FerrySystem", "FerryJSON", "CFerry", "ferryctl",
                "FerryTestSupport",
                .product(name: "SystemPackage", package: "swift-system"),
            ]
        ),
    ],
    swiftLanguageModes: [.v6]
)
