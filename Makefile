# MetaStore: an etcd v3 compatible metadata store.
#   make run    - one member on 127.0.0.1:2379, data in ./default.metastore
#   make test   - vet + every test, including end-to-end runs against real
#                 etcdctl/clientv3 and the reference etcd (built here from
#                 the Go module proxy into .ref/, never committed), and
#                 the in-process packages again under the race detector
#   make bench  - MetaStore vs reference etcd with etcd's benchmark tool
#   make test-long - long differential, crash and watch-guarantee runs
#   make fuzz   - every Go fuzz target, one after another, FUZZTIME each
#                 (default 1m; FUZZTIME=10m make fuzz for a longer run)
#   make test-faults - long fault runs: power loss, disk faults (faults/),
#                 kill / pause / partition of a 3-member cluster (e2e/faults/)
#   make cluster - a local 3-member cluster (scripts/cluster.sh)
#   make bench-cluster - 3-member MetaStore vs 3-member etcd, with failover
#   make bench-migrate - metastoreutl migrate from-etcd vs etcdutl snapshot
#                 restore of a ~1 GiB etcd snapshot
#   make bench-big - MetaStore vs etcd loading 10M keys (~3 GB): RSS and p99s
#                 every 1M keys

GO      ?= go
REF_BIN := .ref/bin

# The server runs with goroutine stack shrinking off (a runtime GODEBUG
# setting, which only the environment or the link-time default can set).
# gRPC's stream workers (gateway.streamWorkers) then keep the stacks a
# request grew instead of having the GC halve them while they wait and
# every next request copy them back up: 3.6 % less server CPU per put
# (scripts/abrace.sh), at the cost of the workers' grown stacks staying
# resident (~15-25 MB at 1000 clients). A plain `go build` works too, just
# without this.
SERVER_LDFLAGS := -X=runtime.godebugDefault=gcshrinkstackoff=1

.PHONY: build run test test-race test-long ref bench clean

build:
	$(GO) build -ldflags='$(SERVER_LDFLAGS)' -o bin/metastore ./cmd/metastore
	$(GO) build -o bin/metastoreutl ./cmd/metastoreutl

run: build
	./bin/metastore --name default --data-dir default.metastore \
		--listen-client-urls http://127.0.0.1:2379 --advertise-client-urls http://127.0.0.1:2379

ref:
	bash scripts/build-ref.sh

# make test also runs the in-process packages (all but e2e, whose tests
# drive separate server processes) under the race detector: a data race
# between an actor and the goroutines it hands work to shows nowhere else
# (one in the importer did, for several sessions). About 5 minutes on 2
# cores; `make test-race` runs e2e's harness under it too.
test: build ref
	$(GO) vet ./...
	METASTORE_BIN=$(CURDIR)/bin/metastore $(GO) test -count=1 -timeout 20m ./...
	$(GO) test -race -count=1 -timeout 20m $$($(GO) list ./... | grep -v /e2e)

test-race: build ref
	METASTORE_BIN=$(CURDIR)/bin/metastore $(GO) test -race -count=1 -timeout 30m ./...

# Long differential and crash runs; not part of `make test`.
test-long: build ref
	METASTORE_BIN=$(CURDIR)/bin/metastore METASTORE_LONG=1 $(GO) test -count=1 -timeout 60m -run 'Differential|Crash|WatchGuarantee' ./e2e/...

bench: build ref
	bash scripts/bench.sh

.PHONY: fuzz

# Every fuzz target (func FuzzX in a package's tests), one after another,
# for FUZZTIME each; FUZZ narrows them by name (FUZZ=Txn make fuzz). A
# failure stops the run and leaves the input under the package's
# testdata/fuzz/FuzzX/, where plain `go test` (and so `make test`) runs it
# from then on, with the committed seeds. docs/reliability.md lists the
# targets and what each checks.
FUZZTIME ?= 1m
FUZZ     ?= .

fuzz:
	@set -e; $(GO) list -f '{{.ImportPath}} {{.Dir}}' ./... | while read -r pkg dir; do \
		for name in $$(cat $$dir/*_test.go 2>/dev/null | sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\)(.*/\1/p' | grep -e '$(FUZZ)' | sort); do \
			echo "== $$pkg $$name ($(FUZZTIME))"; \
			$(GO) test $$pkg -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME); \
		done; \
	done

.PHONY: test-faults

# Long fault runs; not part of `make test` (which runs their short
# versions). In-process power loss and disk faults (faults/); processes,
# network and pauses (e2e/faults): 100 kill -9, 50 SIGSTOP and 50
# partition cycles against three member processes under load. Seeds and
# schedules are in the -v output, artifacts of failed process runs in
# $$METASTORE_FAULTS_OUT (or a kept temp dir). docs/reliability.md has
# the results.
test-faults: build
	METASTORE_FAULTS=long $(GO) test -count=1 -timeout 60m -v ./faults/
	METASTORE_BIN=$(CURDIR)/bin/metastore METASTORE_FAULTS=long $(GO) test -count=1 -v -timeout 90m ./e2e/faults/

.PHONY: cluster bench-cluster

# A local 3-member cluster in the foreground (infra1..3, client ports
# 2379/22379/32379, peer ports 2380/22380/32380, data in ./cluster.metastore);
# Ctrl-C stops it. The same members as the Procfile (goreman start).
cluster: build
	bash scripts/cluster.sh

# 3-member MetaStore vs 3-member reference etcd on loopback: put, linearizable
# range and leader failover (BENCH_SCALE, BENCH_ROUNDS, BENCH_OUT, ... as bench).
bench-cluster: build ref
	bash scripts/bench-cluster.sh

# metastoreutl migrate from-etcd vs etcdutl snapshot restore of the same
# ~1 GiB etcd snapshot (2M keys), then each server's start on the result
# (cmd/metastoreutl/migrate_bench_test.go; MIGRATE_BENCH_KEYS and
# MIGRATE_BENCH_VALUE scale it, MIGRATE_BENCH_VALUES=objects makes the values
# Kubernetes-like objects instead of random bytes, MIGRATE_BENCH_DIR places
# its ~4 GiB of files).
.PHONY: bench-migrate
bench-migrate: build ref
	METASTORE_BIN=$(CURDIR)/bin/metastore METASTORE_BENCH_MIGRATE=1 $(GO) test -count=1 -timeout 60m -v -run TestBenchMigrate ./cmd/metastoreutl

# Keyspaces beyond RAM (scripts/bench-big.sh): both servers load BIG_KEYS
# (10M) keys of 300 B; every BIG_STEP (1M) keys their RSS and the p99 of
# point reads, puts and watch events. Writes bench-big-*.tsv, bench-big.md
# and bench-big.png to BIG_OUT_DIR (.); 8-12 min at full size on 2 cores.
.PHONY: bench-big
bench-big: build ref
	bash scripts/bench-big.sh

clean:
	rm -rf bin .ref/bin
