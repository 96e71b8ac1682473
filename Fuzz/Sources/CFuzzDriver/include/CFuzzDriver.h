#ifndef FERRY_CFUZZDRIVER_H
#define FERRY_CFUZZDRIVER_H
#include <stddef.h>
#include <stdint.h>

/// libFuzzer's entry for programs with their own main (compiler-rt/lib/fuzzer/FuzzerInterface.h).
/// SwiftPM links every executable with main renamed to the module's main, so the fuzzers call this
/// from main.swift instead of relying on libFuzzer's main.
int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*callback)(const uint8_t *data, size_t size));

#endif
