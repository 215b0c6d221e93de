# finsync — the two commands that matter: `make demo` and `make test`.
GO       ?= go
BIN      := bin/finsync
CH       := deploy/clickhouse/local.sh
# Packages whose concurrency matters get the race detector in `make test`.
RACE_PKGS := ./extract/... ./load/... ./transform/... ./schedules/...

# Beside another ClickHouse or finsync on these ports, give the private
# server its own: FINSYNC_CH_TCP_PORT=19100 FINSYNC_CH_HTTP_PORT=18200 make demo
# (finsync and the tests then talk to it).
ifdef FINSYNC_CH_TCP_PORT
export FINSYNC_CLICKHOUSE_ADDR ?= 127.0.0.1:$(FINSYNC_CH_TCP_PORT)
endif
ifdef FINSYNC_CH_HTTP_PORT
export FINSYNC_CLICKHOUSE_HTTP_ADDR ?= 127.0.0.1:$(FINSYNC_CH_HTTP_PORT)
endif

.PHONY: all build clickhouse clickhouse-stop chdb demo test test-long test-cluster test-soak fuzz vet bench clean

all: build

build:
	$(GO) build -o $(BIN) ./cmd/finsync

# Start (installing if needed) the private ClickHouse on 127.0.0.1:19000.
clickhouse:
	$(CH) start

clickhouse-stop:
	$(CH) stop

# Install (once, cached) chDB, the engine of a current ClickHouse release
# (26.7) in-process, on which make test checks every statement finsync
# sends (cmd/finsync/modern_test.go).
chdb:
	deploy/clickhouse/chdb.sh install >/dev/null

# Local ClickHouse, migrations, and a summary of the warehouse.
demo: clickhouse build
	$(BIN) demo

# Every decoder of provider JSON has a fuzz target (seeded with the docs'
# examples and extract/hostile): every FuzzXxx of the module, found by
# `go test -list`, so a new provider's targets join by themselves. `make
# test` gives each a short budget, `make test-long` a long one.
FUZZTIME ?= 4s
# Go 1.26's fuzz coordinator can fail a target with a bare "context deadline
# exceeded" as -fuzztime ends (go.dev/issue/75804, fixed in Go 1.27): fuzzing
# uses Go 1.27.3, which the go command fetches from the module proxy once.
FUZZ_GO ?= GOTOOLCHAIN=go1.27.3 $(GO)

# Everything CI runs. cmd/finsync's end-to-end tests take about 7 minutes on
# two cores, more on a busy machine: past go test's default 10 minutes the
# whole package would fail.
TEST_TIMEOUT ?= 30m
test: clickhouse chdb vet
	$(GO) test -count=1 -timeout $(TEST_TIMEOUT) ./...
	$(GO) test -count=1 -timeout $(TEST_TIMEOUT) -race $(RACE_PKGS)
	$(MAKE) --no-print-directory test-cluster-load
	$(MAKE) --no-print-directory fuzz

fuzz:
	@targets=$$($(GO) test -list '^Fuzz' ./... | awk '/^Fuzz/ {f[n++] = $$1} /^ok/ {for (i = 0; i < n; i++) print $$2 ":" f[i]; n = 0}'); \
	[ -n "$$targets" ] || { echo "no fuzz targets found"; exit 1; }; \
	for t in $$targets; do \
		pkg=$${t%%:*}; fn=$${t##*:}; \
		echo "fuzz $$pkg $$fn ($(FUZZTIME))"; \
		out=$$($(FUZZ_GO) test -run '^$$' -fuzz "^$$fn$$" -fuzztime $(FUZZTIME) $$pkg 2>&1) || { echo "$$out" | tail -40; exit 1; }; \
	done

# The same with ten minutes of fuzzing per decoder.
test-long: FUZZTIME = 10m
test-long: test

vet:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go')); \
	if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...

# Cluster mode on a local cluster (deploy/clickhouse/cluster.sh: ZooKeeper,
# two shards, the first with two replicas): the load package's tests in
# cluster mode, then the demo on the cluster with a replica stopped
# mid-load, compared with the single server. About 7 minutes, so not part
# of `make test`. The cluster is stopped afterwards.
CLUSTER := deploy/clickhouse/cluster.sh
# The loader's tests in cluster mode, part of `make test` so that a loader
# change cannot break cluster mode unseen (a resent INSERT through a
# Distributed table, migrations ON CLUSTER): about 3 minutes, the cluster
# started and stopped around them.
CLUSTER_LOAD_TESTS := ^(TestCluster.*|TestInsert.*|TestBatch.*|TestLoadingTwiceIsIdempotent|TestLargeInsertStreamsBlocksIntoOnePart|TestRoundTripEveryTable|TestMigrateTwiceChangesNothing|TestSchemaMatchesServer|TestDeleteSubjectRows|TestRevokedWithRows)$$
test-cluster-load:
	$(CLUSTER) start
	@rc=0; \
	FINSYNC_CLICKHOUSE_ADDR=127.0.0.1:19101 FINSYNC_CLICKHOUSE_CLUSTER=finsync $(GO) test -count=1 -timeout $(TEST_TIMEOUT) -run '$(CLUSTER_LOAD_TESTS)' ./load/clickhouse || rc=1; \
	$(CLUSTER) stop; exit $$rc

test-cluster: clickhouse
	$(CLUSTER) start
	@rc=0; \
	FINSYNC_CLICKHOUSE_ADDR=127.0.0.1:19101 FINSYNC_CLICKHOUSE_CLUSTER=finsync $(GO) test -count=1 ./load/... && \
	FINSYNC_CLICKHOUSE_CLUSTER=finsync $(GO) test -count=1 -v -run '^TestClusterDemo$$' ./cmd/finsync/ || rc=1; \
	$(CLUSTER) stop; exit $$rc

# The soak test (DEVELOPING.md, Soak test): bin/finsync run for SOAK_DURATION
# on fast schedules against growing sandboxes under every fault, killed
# twice, its ClickHouse restarted once (a private server on 19300/18300),
# then compared with a clean load and its memory, goroutines and open files
# checked for growth. Summary: .finsync/soak/summary.txt. Not part of `make test`.
SOAK_DURATION ?= 15m
test-soak: build
	FINSYNC_SOAK=1 SOAK_DURATION=$(SOAK_DURATION) $(GO) test -count=1 -v -run '^TestSoak$$' -timeout 90m ./cmd/finsync/

# The end-to-end benchmark against clickhouse-client on the same rows
# (BENCH_ROWS, BENCH_ROWS_LARGE, BENCH_USERS to scale; see README Performance).
bench: clickhouse build
	$(GO) run ./cmd/finsync-bench

clean:
	rm -rf bin
