# Gatehouse — every command a developer or CI needs. `make test` and `make run`
# work on a fresh machine: they install or start what they need.

SHELL := /bin/bash
GO ?= go
BIN := $(CURDIR)/.bin
DATA ?= $(CURDIR)/.data
MODULES := proto platform services/accounts services/authorize services/token services/notify services/web services/admin migrate cmd/gatehouse e2e
PKGS := $(MODULES:%=./%/...)

# Pinned tool versions.
BUF_VERSION := v1.75.0
PROTOC_GEN_GO_VERSION := v1.36.12
PROTOC_GEN_GO_GRPC_VERSION := v1.5.1

export PATH := $(BIN):$(PATH)

.PHONY: all build run test test-go lint proto proto-check bench bench-deps tools deps clean

all: build

## build: compile every binary into ./bin
build:
	@mkdir -p bin
	$(GO) build -o bin/ ./cmd/gatehouse ./services/accounts/cmd/accounts ./services/authorize/cmd/authorize ./services/token/cmd/token ./services/notify/cmd/notify ./services/web/cmd/web ./services/admin/cmd/admin

## run: start the all-in-one server with embedded NATS and a private PostgreSQL under .data/
run: deps build
	./bin/gatehouse serve --config deploy/gatehouse.dev.yaml

## test: everything — generated code up to date, lint, all tests against real NATS and PostgreSQL
test: deps proto-check lint test-go

# The e2e package goes first: it is the long pole (about 14 minutes on 2
# cores), and the unit packages run beside it instead of before it. -parallel
# 4 runs its four long tests that wait more than they compute (the rebuild
# under load's two runs, the flood, the personal tokens) at once.
TEST_PKGS := ./e2e/... $(filter-out ./e2e/...,$(PKGS))
test-go:
	$(GO) test -count=1 -timeout 25m -parallel 4 $(TEST_PKGS)

## lint: gofmt and go vet
lint:
	@out=$$(gofmt -l $(MODULES)); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)

## proto: regenerate Go code from proto/ with pinned plugins
proto: tools
	cd proto && buf lint && buf generate

## proto-check: fail when the committed generated code is stale
proto-check: tools
	@tmp=$$(mktemp -d) && trap 'rm -rf $$tmp' EXIT && cp -r proto $$tmp/ && \
	  (cd $$tmp/proto && find . -name '*.pb.go' -delete && buf lint && buf generate) && \
	  if ! diff -r -q proto $$tmp/proto >/dev/null; then diff -r proto $$tmp/proto | head -40; \
	    echo "generated protobuf code is stale: run 'make proto' and commit"; exit 1; fi
	@echo "generated protobuf code is up to date"

tools: $(BIN)/buf $(BIN)/protoc-gen-go $(BIN)/protoc-gen-go-grpc

$(BIN)/buf:
	GOBIN=$(BIN) $(GO) install github.com/bufbuild/buf/cmd/buf@$(BUF_VERSION)
$(BIN)/protoc-gen-go:
	GOBIN=$(BIN) $(GO) install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO_VERSION)
$(BIN)/protoc-gen-go-grpc:
	GOBIN=$(BIN) $(GO) install google.golang.org/grpc/cmd/protoc-gen-go-grpc@$(PROTOC_GEN_GO_GRPC_VERSION)

## deps: install the PostgreSQL server binaries and Chromium (browser tests) from Debian,
## and axe-core (accessibility checks in the browser tests) from npm, when missing
deps:
	@if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && ! command -v initdb >/dev/null; then \
	  echo "installing PostgreSQL from Debian packages"; \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; \
	  else sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; fi; \
	fi
	@if [ ! -x /usr/bin/chromium ]; then \
	  echo "installing Chromium from Debian packages"; \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; fi; \
	fi
	@if [ ! -f $(CURDIR)/.cache/axe/node_modules/axe-core/axe.min.js ]; then \
	  echo "installing axe-core from npm"; \
	  npm install --no-save --no-audit --no-fund --silent --prefix $(CURDIR)/.cache/axe axe-core@4 >/dev/null; \
	fi

## bench-deps: the load generators the load tests drive a running system with (wrk, h2load), from Debian
bench-deps: deps
	@if ! command -v wrk >/dev/null || ! command -v h2load >/dev/null; then \
	  echo "installing wrk and h2load (nghttp2-client) from Debian packages"; \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk nghttp2-client >/dev/null; \
	  else sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk nghttp2-client >/dev/null; fi; \
	fi

## bench: Go benchmarks and a load test of a running system; prints numbers
bench: bench-deps
	@echo "== event log: appends, atomic batches, loads (embedded NATS JetStream, file storage) =="
	$(GO) test -run '^$$' -bench . -benchtime 2s ./platform/eventlog/
	@echo "== projections: catching up with a backlog (PostgreSQL, one statement per event) =="
	$(GO) test -run '^$$' -bench '^BenchmarkProjectionApply$$' -benchtime 2s ./platform/projection/
	@echo "== projections: full rebuild of 100,000 events (one run; about 30 s of setup first) =="
	$(GO) test -run '^$$' -bench '^BenchmarkRebuild100k$$' -benchtime 1x -timeout 15m ./platform/projection/
	@echo "== rate limits: the check of one request against the counts every replica shares (embedded NATS, in memory); p50/p99 per request =="
	$(GO) test -run '^$$' -bench . -benchtime 2s ./platform/ratelimit/
	@echo "== token introspection index: memory per million sessions held (every replica holds every live access token; refresh tokens are not held) =="
	$(GO) test -run '^$$' -bench '^BenchmarkIndexMemory$$' -benchtime 1x ./services/token/
	@echo "== HTTP introspection in process: the homeserver's POST /oauth2/introspect through the public listener's handler chain, ns and allocations per request (issue 16; 67 allocs/op before httpx.Public, httpx.ReadParams and the appended answer, 37 after), and a client's introspection of its refresh token, answered from its session (the read model and the stream), which the homeserver never pays =="
	$(GO) test -run '^$$' -bench '^BenchmarkIntrospect(HTTP|Refresh)$$' -benchtime 2s ./services/token/
	@echo "== session storage: disk per refresh and per active session per day (NATS file store + PostgreSQL), history kept vs oauth.compact_sessions; before the redesign: NATS 824 B + PostgreSQL 623 B per refresh (issue 16) =="
	$(GO) test -run '^$$' -bench '^BenchmarkSessionStorage$$' -benchtime 1x -timeout 10m ./services/token/
	@echo "== sessions read model: a blue/green rebuild from a compacted TOKEN stream (each session one event carrying its state), sessions/s (3,000 sessions; GATEHOUSE_BENCH_SESSIONS=n for more) =="
	$(GO) test -run '^$$' -bench '^BenchmarkSessionsRebuild$$' -benchtime 1x -timeout 10m ./services/token/
	@echo "== sessions nothing can use (client_credentials, whose token expired): the sweep that ends them, one replica, two at once, and two through pg.Alone (one at a time, as they run), sessions/s and CPU per session (5,000; GATEHOUSE_BENCH_SESSIONS=n for more); one at a time it ended about 700 a second, fewer than the 3,000 client_credentials tokens a second of issue 16 start =="
	$(GO) test -run '^$$' -bench '^BenchmarkExpireSessions$$' -benchtime 1x -timeout 10m ./services/token/
	@echo "== session activity: bytes per active session per day in the TOKEN stream, kept for ever before vs. bounded by oauth.activity_retention (issue 16) =="
	$(GO) test -run '^$$' -bench '^BenchmarkActivityStorage$$' -benchtime 1x ./services/token/
	@echo "== passwords: sign-in cost of argon2id (default parameters) vs a bcrypt hash imported from Synapse (cost 12, pepper), and argon2id padded to bcrypt (every verification takes the slowest scheme's time) =="
	$(GO) test -run '^$$' -bench . -benchtime 2s ./services/accounts/internal/password/
	@echo "== NATS JetStream: server memory and storage per million subjects (one event-sized message each, file storage) =="
	$(GO) test -run '^$$' -bench '^BenchmarkSubjectMemory$$' -benchtime 1x -timeout 20m ./platform/natsserver/
	@echo "== load test of a running gatehouse serve: introspection (HTTP, gRPC, homeserver secret), client_credentials, compat refreshes (each loads its session from the stream, appends the rotation, waits for the read model); 64 concurrent clients; server CPU per request (GATEHOUSE_BENCH_PROFILE=<dir> saves pprof profiles) =="
	$(GO) test -run '^$$' -bench '^BenchmarkLoad$$' -benchtime 10000x ./e2e/
	@echo "== the same load test driven by wrk (HTTP/1.1, 64 connections) and h2load (gRPC over HTTP/2, 64 streams on one connection), load generators in a process of their own that leave the server more of the two cores; also introspection held at the targets' rates (HTTP 25,000/s with its 64 connections in step and out of step, and a bare net/http server under the same loads: the machine's floor; gRPC 36,000/s); every answer checked against the server's counters; 10 s each =="
	$(GO) test -run '^$$' -bench '^BenchmarkLoadExternal$$' -benchtime 1x ./e2e/
	@echo "== revocation on one token replica seen by another: delay after the revocation's 200 =="
	$(GO) test -run '^$$' -bench '^BenchmarkRevocationVisibility$$' -benchtime 200x ./e2e/
	@echo "== idle resident memory: all-in-one gatehouse serve, and one process per service =="
	$(GO) test -run '^$$' -bench '^BenchmarkIdleMemory$$' -benchtime 1x ./e2e/
	@echo "== pages: sign-in and consent rendering, and the signed-in authorize → consent → code exchange round trip =="
	$(GO) test -run '^$$' -bench '^BenchmarkWeb$$' -benchtime 1000x ./e2e/
	@echo "== Synapse migration: generate a Synapse database of 100,000 users with COPY, then stream every table (rows/s per table) =="
	$(GO) test -run '^$$' -bench '^BenchmarkReader100k$$' -benchtime 1x -timeout 15m ./migrate/synapse/
	@echo "== Synapse migration: import 100,000 generated users (email, 2 devices with tokens each) into a running gatehouse serve with migrate synapse; users/s (users phase; everything), the server CPU per user =="
	$(GO) test -run '^$$' -bench '^BenchmarkMigrateSynapse$$' -benchtime 1x -timeout 60m ./e2e/
	@echo "== benchmarks of every other package =="
	@pkgs=$$(grep -rl --include='*_test.go' '^func Benchmark' $(MODULES) | xargs -r -n1 dirname | sort -u | \
	  grep -vx -e platform/eventlog -e platform/natsserver -e platform/projection -e platform/ratelimit -e services/token -e services/accounts/internal/password -e migrate/synapse -e e2e | sed 's|^|./|'); \
	if [ -z "$$pkgs" ]; then echo "(none)"; else set -x; $(GO) test -run '^$$' -bench . -benchtime 2s $$pkgs; fi

clean:
	rm -rf bin .data
