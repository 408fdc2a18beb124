# The two commands a newcomer needs: `make run` and `make test`.
# Both install what is missing first (scripts/install-deps.sh is idempotent).

CARGO ?= cargo
export PATH := $(HOME)/.cargo/bin:$(PATH)

.PHONY: run test deps build clean

deps:
	scripts/install-deps.sh

build: deps
	$(CARGO) build --workspace --all-targets --locked

# Starts the default: `sipbridge stdio` on loopback, printing what to type.
# (It becomes the echo preset once the daemon lands.)
run: build
	$(CARGO) run --locked --bin sipbridge -- stdio

# Every test: unit tests and the end-to-end tests against real peers, inside
# a private network namespace (loopback only).
test: build
	scripts/netns.sh $(CARGO) test --workspace --locked --offline

clean:
	$(CARGO) clean
