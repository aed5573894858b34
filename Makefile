# Kouple: `make demo` runs a base with the example modules; `make test` runs every test.
SHELL := /bin/bash
GO ?= go
BIN := $(CURDIR)/bin
export KOUPLE_TEST_CACHE ?= $(or $(TMPDIR),/tmp)/kouple-test-wazero-cache

# Packages whose tests also run under the race detector. Compiling wasm in a -race binary is ~11x slower, so
# the race run comes second and finds compiled code in the cache the first run filled.
RACE_PKGS := ./artifact/... ./manifest/... ./runtime/... ./observe/... ./agent/...

DEMO_DIR := $(CURDIR)/.cache/demo
EXAMPLES := hello notes greeter todo shop/inventory shop/orders

.PHONY: all build test test-unit test-race test-sdk test-fuzz vet demo demo-modules clean bench postgres

all: build

build:
	$(GO) build -trimpath -o $(BIN)/kouple ./cmd/kouple

vet:
	$(GO) vet ./...
	cd sdk && $(GO) vet ./... && GOOS=wasip1 GOARCH=wasm $(GO) vet ./...

test: postgres vet test-unit test-race test-sdk test-fuzz

# PostgreSQL's binaries for the sql service's tests on PostgreSQL (installed with apt-get when missing); under
# make those tests fail rather than skip without them.
postgres:
	tools/postgres/ensure.sh

test-unit: export KOUPLE_TEST_POSTGRES ?= required
test-unit: postgres
	$(GO) test -count=1 -timeout 30m ./...

test-race:
	$(GO) test -race -count=1 -timeout 30m $(RACE_PKGS)

test-sdk:
	cd sdk && $(GO) test -count=1 ./...

# A few seconds of each fuzzer (the corpora in testdata/fuzz run in test-unit too).
FUZZ_TIME ?= 5s
test-fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZ_TIME) ./manifest
	$(GO) test -run '^$$' -fuzz '^FuzzReadWasm$$' -fuzztime $(FUZZ_TIME) ./artifact
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeRequests$$' -fuzztime $(FUZZ_TIME) ./agent

# demo: a base on the default ports (gateway 127.0.0.1:8080, agent 127.0.0.1:1238) with the example modules,
# in the foreground; Ctrl-C stops it. Its data stays in .cache/demo between runs.
demo: build demo-modules
	$(BIN)/kouple base --modules $(DEMO_DIR)/modules --data-dir $(DEMO_DIR)/data

demo-modules: build
	@mkdir -p $(DEMO_DIR)/modules
	@for m in $(EXAMPLES); do $(BIN)/kouple build examples/$$m -o $(DEMO_DIR)/modules/$$(basename $$m).wasm || exit 1; done

include tools/k8s/k8s.mk

bench:
	$(GO) test -run '^$$' -bench . -benchtime 2s ./runtime/wasm/

clean:
	rm -rf $(BIN) $(DEMO_DIR)
