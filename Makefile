# Gantry's build and test entry points. The README names `make run` and `make test`.
GO       ?= go
PKGS     ?= ./...
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT   ?= $(shell git rev-parse HEAD 2>/dev/null)
LDFLAGS  := -X main.version=$(VERSION) -X main.commit=$(COMMIT)

.PHONY: build run test vet bench-proxy bench-entities bench-push

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o bin/gantry ./cmd/gantry

# run builds gantry and starts a control plane (embedded SQLite) with a local runtime instance of
# its default group, ready to proxy.
run: build
	./bin/gantry quickstart

# test runs every test (unit, store on SQLite and PostgreSQL, end-to-end) with the race detector.
test: vet
	@# Allocation budgets are skipped under the race detector (it changes allocation counts), so
	@# they run first on their own without it; then every test runs with it.
	$(GO) test -count=1 -run 'Alloc|NoAlloc|NotAllocate' ./internal/...
	$(GO) test -race -count=1 -timeout 30m $(PKGS)

vet:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$unformatted" ]; then echo "gofmt needed on: $$unformatted"; exit 1; fi
	$(GO) vet $(PKGS)

# bench-proxy compares the product with nginx on this machine (installs nginx and wrk if
# missing): gantry runtime, configured by gantry serve through the Admin API, with one service
# and one route, and with key-auth (1,000 consumers) + rate-limiting; 3 runs of 10 s each.
bench-proxy:
	bash bench/runtime.sh

# bench-proxy-core is bench-proxy for the proxy engine alone (bench/gantryproxy: no gateway
# layer, no control plane), behind its own server loop and behind net/http's.
.PHONY: bench-proxy-core
bench-proxy-core:
	bash bench/proxy.sh

# bench-entities times creating and listing 10,000 services, routes and consumers in one group,
# on SQLite and on PostgreSQL.
bench-entities:
	bash bench/entities.sh

# bench-proxy-go runs the proxy's in-process benchmarks with allocation counts:
# the handler path alone and end to end behind net/http's server and Serve,
# each with and without key-auth + rate-limiting; and the gateway layer's share
# (generation reference, route match) against the proxy called directly.
.PHONY: bench-proxy-go
bench-proxy-go:
	$(GO) test -run '^$$' -bench . -benchmem -benchtime=20000x -count=3 ./internal/dp/proxy ./internal/dp/gateway

# bench-push measures push latency (write accepted → 1, 10, 100 instances report the new hash) and
# the control plane's memory per connected instance (1,000 simulated instances).
bench-push:
	bash bench/push.sh
