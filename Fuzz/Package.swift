// swift-tools-version: 6.1
// Ferry's fuzzers: a package of its own, so that the main package and its CI never build them.
// Build and run them with Fuzz/run.sh (libFuzzer with AddressSanitizer); see Fuzz/README.md.
import PackageDescription

// The main package is the folder above; SwiftPM names a path dependency after its folder.
let mainPackage = Context.packageDirectory.split(separator: "/").dropLast().last.map(String.init)?.lowercased() ?? "ferry"

/// One executable per fuzzer; each defines LLVMFuzzerTestOneInput and hands it to libFuzzer.
let fuzzers: [(name: String, products: [String])] = [
    ("fuzz-notify", ["FerryFuzzTargets"]),
    ("fuzz-unitfile", ["FerryFuzzTargets"]),
    ("fuzz-mapping", ["FerryFuzzTargets"]),
    ("fuzz-upstream", ["FerryFuzzTargets"]),
    ("fuzz-reexec", ["FerryFuzzTargets"]),
    ("fuzz-varlink", ["FerryFuzzTargets"]),
    ("fuzz-json", ["FerryFuzzTargets"]),
    ("fuzz-emulator-wire", ["LiveUpdate"]),
    ("fuzz-emulator-kernel", ["LiveUpdate", "LiveUpdateEmulator", "FerryFuzzTargets"]),
]

let package = Package(
    name: "ferry-fuzz",
    dependencies: [.package(path: ".."), .package(url: "https://github.com/apple/swift-system", from: "1.4.0")],
    targets: [
        .target(name: "CFuzzDriver"),
        .target(name: "FuzzSupport", dependencies: ["CFuzzDriver"]),
        // Writes the seed corpora (Corpus/<fuzzer>/) from the test suite's inputs.
        .executableTarget(name: "fuzz-seeds", dependencies: [
            .product(name: "FerryFuzzTargets", package: mainPackage), .product(name: "LiveUpdate", package: mainPackage),
        ]),
    ] + fuzzers.map { fuzzer in
        .executableTarget(name: fuzzer.name,
                          dependencies: ["FuzzSupport", .product(name: "SystemPackage", package: "swift-system")]
                              + fuzzer.products.map { .product(name: $0, package: mainPackage) })
    },
    swiftLanguageModes: [.v6]
)
