# finsync — the two commands that matter: `make demo` and `make test`.
GO       ?= go
BIN      := bin/finsync
CH       := deploy/clickhouse/local.sh
# Packages whose concurrency matters get the race detector in `make test`.
RACE_PKGS := ./extract/... ./load/... ./transform/... ./schedules/...

.PHONY: all build clickhouse clickhouse-stop demo test vet bench clean

all: build

build:
	$(GO) build -o $(BIN) ./cmd/finsync

# Start (installing if needed) the private ClickHouse on 127.0.0.1:19000.
clickhouse:
	$(CH) start

clickhouse-stop:
	$(CH) stop

# Local ClickHouse, migrations, and a summary of the warehouse.
demo: clickhouse build
	$(BIN) demo

# Everything CI runs.
test: clickhouse vet
	$(GO) test -count=1 ./...
	$(GO) test -count=1 -race $(RACE_PKGS)

vet:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go')); \
	if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...

# Loader vs clickhouse-client on the same rows (BENCH_ROWS to scale).
bench: clickhouse
	$(GO) run ./cmd/finsync-bench

clean:
	rm -rf bin
