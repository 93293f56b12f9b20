# tally: `make run` starts the collector with the example config and a demo
# page; `make test` runs every test. Both install what is missing first.

GO        ?= go
CONFIG    ?= examples/tally.yaml
GOTEST    ?= $(GO) test
TESTFLAGS ?= -count=1 -timeout 25m
HUBSPOT_CLIENT := ingest/testdata/hubspot-client
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT    ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
LDFLAGS   := -X main.version=$(VERSION) -X main.commit=$(COMMIT)

.PHONY: run test deps test-deps build bench fuzz check lint clean

run: deps
	$(GO) run -ldflags "$(LDFLAGS)" ./cmd/tally serve -config $(CONFIG)

test: test-deps
	$(GO) vet ./...
	$(GOTEST) $(TESTFLAGS) ./...

# Static analysis beyond go vet (staticcheck comes from the Go module proxy).
lint:
	$(GO) vet ./...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o bin/tally ./cmd/tally

check:
	$(GO) run ./cmd/tally check -config $(CONFIG)

deps:
	@.ci/install-deps
	@$(GO) mod download

test-deps:
	@.ci/install-deps test
	@$(GO) mod download
	@cd $(HUBSPOT_CLIENT) && npm ci --no-audit --no-fund --loglevel=error

# Benchmarks of the hot paths (validate+encode, enrichment, hashing).
bench:
	$(GO) test -run '^$$' -bench . -benchmem ./ingest/... ./store/... ./rules/...

# Short fuzzing of every parser; FUZZTIME=5m for longer.
FUZZTIME ?= 20s
fuzz:
	@GO=$(GO) FUZZTIME=$(FUZZTIME) .ci/fuzz

clean:
	rm -rf bin var
