// Default LeakSanitizer suppressions for the test bundle, so that
// `swift test --sanitize=address` passes without LSAN_OPTIONS.
//
// `swift test` first runs the bundle's (empty) XCTest suite; the toolchain's
// libXCTest keeps its suite objects until exit, and LeakSanitizer reports
// them (144-368 bytes, every frame in libXCTest.so) and fails the run. Only
// leaks whose stack passes through libXCTest.so are suppressed: leaks in
// swift-rcu or in the tests still fail. Without AddressSanitizer nothing
// calls this function.
#include "lsan_defaults.h"

const char *__lsan_default_suppressions(void) {
    return "leak:libXCTest.so\n";
}
