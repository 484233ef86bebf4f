# apt-p2p build, test and benchmark targets. `make test` is what CI runs.
SHELL := /bin/bash
GO ?= go
export GOFLAGS := -mod=readonly
FUZZTIME ?= 30s
BIN := bin/apt-p2p
PKGS := ./...
# Every package runs again under the race detector except the end-to-end test,
# whose daemons are separate processes (the race detector sees only the test).
RACE_PKGS ?= $(shell $(GO) list ./... | grep -v /internal/e2e)

.PHONY: all build run test race bench bench-full fuzz lint vet ci deps deb clean smoke-bench unit

all: build

# deps installs the Debian packages the tests need (apt-get, dpkg-deb, apt-ftparchive,
# gpg, xz). It only installs when something is missing and we are root.
deps:
	@bash scripts/install-deps.sh test

build:
	@mkdir -p bin
	$(GO) build -trimpath -o $(BIN) ./cmd/apt-p2p

run: build
	./$(BIN) run --embedded $(RUNARGS)

vet:
	$(GO) vet $(PKGS)

lint: vet
	@files=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$files" ]; then echo "gofmt needed:"; echo "$$files"; exit 1; fi
	$(GO) tool staticcheck $(PKGS)

unit:
	$(GO) test -count=1 -timeout 20m $(PKGS)

race:
	$(GO) test -race -count=1 -timeout 25m $(RACE_PKGS)

# Every benchmark once, as a smoke test that they still run.
smoke-bench:
	$(GO) test -count=1 -run='^$$' -bench=. -benchtime=1x $(PKGS)

# Fuzz seed corpora run as regression tests inside `unit` (go test runs them).
test: deps lint unit race smoke-bench
	@echo "make test: all checks passed"

ci: test

bench:
	bash bench/run.sh quick

bench-full:
	bash bench/run.sh full

# One measurement at a time: make bench-proxy (BENCH_MODE=quick for the short variant).
BENCH_MODE ?= full
BENCHES := proxy cold memory swarm dht components similarity wan ipv6 lan loadaware
.PHONY: $(addprefix bench-,$(BENCHES))
$(addprefix bench-,$(BENCHES)): bench-%:
	bash scripts/install-deps.sh bench
	bash bench/$*.sh $(BENCH_MODE)

# Runs every fuzz target for FUZZTIME each.
fuzz:
	@set -e; for pkg in $$($(GO) list ./...); do \
	  dir=$$($(GO) list -f '{{.Dir}}' $$pkg); \
	  for f in $$(grep -ho '^func Fuzz[A-Za-z0-9_]*' $$dir/*_test.go 2>/dev/null | sed 's/func //'); do \
	    echo "== $$pkg $$f ($(FUZZTIME))"; \
	    $(GO) test -run='^$$' -fuzz="^$$f$$" -fuzztime=$(FUZZTIME) $$pkg; \
	  done; \
	done

deb: build
	bash scripts/build-deb.sh

clean:
	rm -rf bin
