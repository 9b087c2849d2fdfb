# The two commands of the README are `make run` and `make test`; the rest are
# their parts. Everything is idempotent and fetches what it needs.
GO ?= $(shell command -v go 2>/dev/null || echo /usr/local/go/bin/go)
export PATH := $(dir $(GO)):$(PATH)

.PHONY: setup web build run test test-cluster proto bench

## setup: fetch and cache the embedded ClickHouse engine (libchdb.so, pinned) and the IP databases (ipdb)
setup:
	@./scripts/fetch-chdb.sh >/dev/null
	@./scripts/fetch-ipdb.sh >/dev/null

## web: the web page (web/ → web/dist, embedded in the binary); npm ci and a Vite build, only when stale
web:
	@./scripts/web-build.sh

## build: the one binary, bin/flowlog
build: web
	$(GO) build -ldflags "-X github.com/flowlog/flowlog.version=$$(git describe --tags --always --dirty 2>/dev/null || echo devel)" -o bin/flowlog ./cmd/flowlog

## run: the collector on the embedded engine, data in ./data, loopback only
run: setup web build
	./bin/flowlog serve --data ./data

## test: every test, against the real engine, real gRPC and the real binary
test: setup web
	@./scripts/test-deps.sh
	@./scripts/web-test-deps.sh
	$(GO) vet ./...
	$(GO) test -count=1 -timeout 30m ./...
	@$(MAKE) --no-print-directory test-cluster
	FUZZTIME=5s ./scripts/fuzz-short.sh

## test-cluster: the store's and ingest's suites once more in cluster mode (Distributed tables
## and sharding keys, on a one-shard cluster of the embedded engine; ~2 min on 2 cores)
test-cluster: setup
	FLOWLOG_TEST_LOCAL_CLUSTER=1 $(GO) test -count=1 -timeout 20m ./store/ ./ingest/

## proto: regenerate proto/flow/*.pb.go with pinned generators
proto:
	./scripts/gen-proto.sh

## bench: the load benchmark recorded in BENCHMARKS.md
bench: setup build
	./bin/flowlog bench --duration 60s
