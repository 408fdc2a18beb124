# The two commands a newcomer needs: `make run` and `make test`.
# Both install what is missing first (scripts/install-deps.sh is idempotent).

CARGO ?= cargo
export PATH := $(HOME)/.cargo/bin:$(PATH)

.PHONY: run test deps build lint bench clean

deps:
	scripts/install-deps.sh

build: deps
	$(CARGO) build --workspace --all-targets --locked

# Starts the default: the echo preset on loopback (SIP on udp 127.0.0.1:5060),
# printing the SIP URI to call and a baresip line that calls it.
# `sipbridge stdio` (the media engine for SIP.js apps) is one command away:
# `cargo run --bin sipbridge -- stdio`.
run: build
	$(CARGO) run --locked --bin sipbridge -- run --preset echo

# House habits, checked in seconds before any test runs: formatting
# (rustfmt.toml), clippy with warnings as errors, and no import circles
# between the files of a crate (scripts/check-layout.py).
lint:
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets --locked --offline -- -D warnings
	scripts/check-layout.py bridge/src pipelines/src signaling/src

# Every test: unit tests and the end-to-end tests against real peers, inside
# a private network namespace (loopback only).
test: build lint
	scripts/netns.sh $(CARGO) test --workspace --locked --offline --no-fail-fast
	scripts/netns.sh npm --prefix node-shim test

clean:
	$(CARGO) clean

# Benchmarks (not part of `make test`): prints a table, writes target/bench.json.
# BENCH_CALLS=1,10 make bench for a quick run.
bench:
	scripts/install-deps.sh --bench
	$(CARGO) build --release --locked -p sipbridge -p e2e
	SIPBRIDGE_LOG=warn SIPBRIDGE_BIN=$(CURDIR)/target/release/sipbridge scripts/netns.sh $(CURDIR)/target/release/bench
