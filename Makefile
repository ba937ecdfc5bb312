# Gantry's build and test entry points. The README names `make run` and `make test`.
GO       ?= go
PKGS     ?= ./...
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT   ?= $(shell git rev-parse HEAD 2>/dev/null)
LDFLAGS  := -X main.version=$(VERSION) -X main.commit=$(COMMIT)

.PHONY: build run test vet bench-proxy bench-entities bench-push

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o bin/gantry ./cmd/gantry

# install puts gantry in $(go env GOPATH)/bin (or GOBIN), so that the CLI is on the PATH.
.PHONY: install
install:
	$(GO) install -ldflags "$(LDFLAGS)" ./cmd/gantry

# run builds gantry and starts a control plane (embedded SQLite) with a local runtime instance of
# its default group, ready to proxy.
run: build
	./bin/gantry quickstart

# test checks formatting, vet and lint, runs the server loop's differential fuzz target (about a minute),
# then every test (unit, store on SQLite and PostgreSQL, end-to-end) with the race detector.
test: vet lint
	@# Allocation budgets are skipped under the race detector (it changes allocation counts), so
	@# they run first on their own without it; then every test runs with it.
	$(GO) test -count=1 -run 'Alloc|NoAlloc|NotAllocate' ./internal/...
	$(MAKE) --no-print-directory fuzz
	$(GO) test -race -count=1 -timeout 30m $(PKGS)

# test-deck runs the end-to-end test of stock decK against a runtime group (test/e2e/deck_test.go):
# ping, online validate, sync of every entity type, diff, dump round trip, drift, updates and
# deletes, select-tag sync, reset, and restore into a new group. decK is built from tools/deck
# (its own module, pinned by its go.sum) into DECK_CACHE, once per go.mod/go.sum content.
DECK_CACHE ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/gantry/deck
DECK_SUM    = $(shell cat tools/deck/go.mod tools/deck/go.sum | sha256sum | cut -c1-16)
DECK_BIN    = $(DECK_CACHE)/deck-$(DECK_SUM)
.PHONY: test-deck
test-deck:
	@if [ ! -x "$(DECK_BIN)" ]; then \
		echo "building decK into $(DECK_BIN)"; \
		mkdir -p "$(DECK_CACHE)" && \
		(cd tools/deck && $(GO) build -o "$(DECK_BIN).tmp" github.com/kong/deck) && \
		mv "$(DECK_BIN).tmp" "$(DECK_BIN)"; \
	fi
	GANTRY_E2E_DECK="$(DECK_BIN)" $(GO) test -count=1 -timeout 20m -run 'TestDeck' ./test/e2e/

# test-deploy checks the deployment artefacts (Dockerfile, deploy/docker-compose.yml, deploy/systemd,
# the Helm chart in deploy/helm/gantry) against the gantry binary they run: the chart rendered as
# `helm template` does and every object decoded strictly into the Kubernetes API types, `helm lint`,
# and `docker compose config` and `systemd-analyze verify` where installed. deploy/test is its own
# module, so the main module does not depend on Helm or the Kubernetes API.
.PHONY: test-deploy
test-deploy:
	cd deploy/test && $(GO) vet ./... && $(GO) test -count=1 ./...

# lint runs golangci-lint (configured in .golangci.yml) over the module, first installing the
# pinned version with `go install` when it is missing or another version.
GOLANGCI_LINT_VERSION ?= v2.15.0
GOLANGCI_LINT = $(or $(shell $(GO) env GOBIN),$(shell $(GO) env GOPATH)/bin)/golangci-lint
.PHONY: lint
lint:
	@if [ "$$($(GOLANGCI_LINT) version --short 2>/dev/null)" != "$(GOLANGCI_LINT_VERSION:v%=%)" ]; then \
		echo "installing golangci-lint $(GOLANGCI_LINT_VERSION)"; \
		$(GO) install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_LINT_VERSION); \
	fi
	$(GOLANGCI_LINT) run ./...

# vulncheck runs govulncheck offline against a vulnerability database built from the
# golang.org/x/vulndb module (see .ci/govulncheck.sh); it fails when the code calls a vulnerable
# symbol.
.PHONY: vulncheck
vulncheck:
	bash .ci/govulncheck.sh

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

# bench-revisions measures history: bytes recorded per revision in a 10,000-route group after 100
# single-route changes (SQLite and PostgreSQL), and single-entity Admin API writes that record it.
.PHONY: bench-revisions
bench-revisions:
	$(GO) test -run '^$$' -bench 'BenchmarkRevisionStorage' -benchtime 1x ./internal/cp/revisions
	$(GO) test -run '^$$' -bench 'BenchmarkAdminAPIWrite' -benchtime 2000x -count 3 ./internal/cp/revisions

# bench-declarative imports a declarative file of 10,000 services, 10,000 routes and 10,000
# consumers into an empty group, on SQLite and PostgreSQL (target: under 10 s each).
.PHONY: bench-declarative
bench-declarative:
	$(GO) test -run '^$$' -bench 'BenchmarkImport' -benchtime 1x ./internal/cp/declarative

# bench-analytics runs the analytics benchmarks: the runtime's per-request aggregation (serial and
# parallel, with allocations), and on SQLite and PostgreSQL the control plane's ingestion of one
# minute from 100 instances x 1,000 series and a 30-day query over 1,000 services.
.PHONY: bench-analytics
bench-analytics:
	$(GO) test -run '^$$' -bench 'BenchmarkRecord' -benchmem -benchtime 2s -count 3 ./internal/dp/analytics
	$(GO) test -run '^$$' -bench 'BenchmarkIngestMinute' -benchtime 3x ./internal/cp/analytics
	$(GO) test -run '^$$' -bench 'BenchmarkQuery30Days' -benchtime 10x -count 2 ./internal/cp/analytics

# bench-push measures push latency (write accepted → 1, 10, 100 instances report the new hash), the
# same across two control plane processes on PostgreSQL (100 instances on the other process), and
# the control plane's memory per connected instance (1,000 simulated instances).
bench-push:
	bash bench/push.sh

# fuzz runs the HTTP/1.1 server's differential fuzz target for 600,000 executions: the same bytes through its
# request parser and net/http's, every disagreement not listed as intended is a failure.
#
# The budget is a count of executions (about a minute on 2 cores), not a duration: Go 1.26's fuzz
# coordinator can report a spurious "context deadline exceeded" when a -fuzztime duration ends
# while a worker is busy (go.dev/issue/75804, fixed in Go 1.27), typically while it minimizes a new
# input, which it may do for up to -fuzzminimizetime.
FUZZ_EXECS ?= 600000
.PHONY: fuzz
fuzz:
	$(GO) test -run '^$$' -fuzz FuzzDifferential -fuzztime $(FUZZ_EXECS)x -fuzzminimizetime 10s -timeout 15m ./internal/dp/h1server/
