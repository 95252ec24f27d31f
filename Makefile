# The README's two commands: `make tour` (rcu-stress's default tour) and
# `make test` (the test suite). Both install liburcu-dev when it is missing.
SWIFT ?= swift

.PHONY: deps tour quick-tour test bench build-release

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

test: deps
	$(SWIFT) test
