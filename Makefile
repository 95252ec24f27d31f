# The README's two commands: `make tour` (rcu-stress's default tour) and
# `make test` (the test suite). Both install liburcu-dev when it is missing.
SWIFT ?= swift

.PHONY: deps tour quick-tour test test-asan test-tsan bench build-release

deps:
	@scripts/ensure-deps.sh

build-release: deps
	$(SWIFT) build -c release --product rcu-stress

tour: build-release
	.build/release/rcu-stress

quick-tour: build-release
	.build/release/rcu-stress --quick

bench: build-release
	.build/release/rcu-stress bench

# A bound on the whole run: a deadlock that no watchdog covers fails the run
# (timeout exits 124 or 137) instead of hanging CI for its 90 minutes.
TEST_TIMEOUT ?= 1800

test: deps
	timeout -k 10 $(TEST_TIMEOUT) $(SWIFT) test

# The test suite under the sanitizers (docs/testing.md, "Sanitizers"). Each
# has its own scratch path, so neither rebuilds the plain debug build.
# ThreadSanitizer builds run every domain in the atomic+seqcst mode
# (docs/design.md, 8.1); a race report fails the run (exit code 66).
test-asan: deps
	$(SWIFT) build --build-tests --sanitize=address --scratch-path .build-asan
	timeout -k 10 $(TEST_TIMEOUT) $(SWIFT) test --skip-build --sanitize=address --scratch-path .build-asan

test-tsan: deps
	$(SWIFT) build --build-tests --sanitize=thread --scratch-path .build-tsan
	timeout -k 10 $(TEST_TIMEOUT) $(SWIFT) test --skip-build --sanitize=thread --scratch-path .build-tsan
