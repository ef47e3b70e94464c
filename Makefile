# godwit: `make demo` runs a VM on a fresh machine, `make test` runs every test.
# Both install and start what they need (Debian packages, libvirtd, the test guest).

GO      ?= go
# bash: the test recipes pipe go test and need pipefail.
SHELL   := /bin/bash
export CGO_ENABLED := 0
export PATH := $(PATH):/usr/local/go/bin
BIN     := bin/godwit
GUEST   := .cache/guest
# The version `godwit version` prints and the Debian package carries: one
# string for both (scripts/version.sh says how it is made from git).
ifndef VERSION
VERSION := $(shell scripts/version.sh)
endif
LDFLAGS := -X github.com/godwit-project/godwit/internal/buildinfo.Version=$(VERSION)
# Where make deb puts godwit_VERSION_amd64.deb.
DEBDIR  ?= bin

.PHONY: ui-assets ui-check all build deb setup setup-tests setup-bench guest demo tour demo-migrate demo-stop test test-unit test-e2e sweep fuzz promtool openapi-lint bench vet fmt-check clean python

all: build

build:
	$(GO) build -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/godwit

# The Debian package (amd64): the binary, godwit.service, /etc/godwit,
# man pages and shell completion from the command tree, Depends from
# internal/prereq/programs.txt (see internal/debpkg). test/deb installs it
# with apt in a fresh Debian 12 root.
deb: build
	$(GO) run ./tools/deb -binary $(BIN) -version '$(VERSION)' -out $(DEBDIR)

# Install what godwit's features run (internal/prereq/programs.txt) if
# missing, fix /dev/kvm, start virtlogd + libvirtd (+ Open vSwitch).
setup:
	scripts/host-setup.sh

# The same, plus the programs only the tests run.
setup-tests:
	scripts/host-setup.sh --tests

# The same, plus the benchmarks' baselines (rsync, restic, borg).
setup-bench:
	scripts/host-setup.sh --bench

# The tiny test guest: Debian kernel + busybox initramfs (.cache/guest).
guest:
	test/guest/build.sh $(GUEST)

demo: setup guest build
	scripts/demo.sh

# The README's five-minute tour, command by command, after the demo.
tour: demo
	scripts/tour.sh

# Two simulated hosts on this machine and a live migration between them.
demo-migrate: setup guest build
	$(GO) run ./test/testbed/cmd/demo-migrate -godwit $(BIN) -guest $(GUEST)

demo-stop: build
	scripts/demo.sh stop

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed: $$out"; exit 1; fi

vet:
	$(GO) vet ./...

# Unit tests, then the e2e tests on a real libvirtd with real guests, then
# short bounded fuzz runs. First the sweeper removes what earlier runs that
# were killed left behind; go test's events go through testsummary, which
# prints the usual output, then the skipped tests and each package's time.
# TESTFLAGS adds go test flags (make test TESTFLAGS=-short: no e2e tests).
# The e2e package is the long pole (34 min in a fresh root): its timeout
# leaves room for a slower machine.
TESTFLAGS ?=
test: setup-tests guest build fmt-check vet promtool openapi-lint ui-check
	$(GO) run ./test/sweep/cmd/sweep
	set -o pipefail; $(GO) test -json -count=1 -p 2 -timeout 45m $(TESTFLAGS) ./... | $(GO) run ./test/testsummary/cmd/testsummary
	$(MAKE) fuzz

# Remove what test runs that died left: daemons, libvirtds, QEMUs, network
# namespaces, libvirt domains, networks and pools, and their directories
# (only runs whose process is gone; see test/sweep).
sweep:
	$(GO) run ./test/sweep/cmd/sweep

# Fuzz the spec parser, sizes and the API's request decoders for FUZZTIME
# each. The corpus is committed under each package's testdata/fuzz; new
# failing inputs land there too (commit them with the fix).
FUZZTIME ?= 10s
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzParseSize$$' -fuzztime $(FUZZTIME) -parallel 2 ./api
	$(GO) test -run '^$$' -fuzz '^FuzzReadSpec$$' -fuzztime $(FUZZTIME) -parallel 2 ./internal/cli
	$(GO) test -run '^$$' -fuzz '^FuzzAPIDecode$$' -fuzztime $(FUZZTIME) -parallel 2 ./internal/daemon

# Redocly's OpenAPI linter from its lockfile (node_modules is git-ignored);
# internal/daemon's TestOpenAPILint runs it offline on /openapi.json.
openapi-lint:
	cd tools/openapi-lint && npm ci --no-audit --no-fund --loglevel=error

# The web page's files (internal/ui/assets, committed: go build needs no
# npm) from internal/ui/web/src and the npm packages its lockfile pins,
# bundled by esbuild. ui-check rebuilds them in a scratch directory and
# fails when the committed ones differ.
ui-assets:
	internal/ui/web/build.sh

ui-check:
	internal/ui/web/build.sh --check

# promtool (from Debian's prometheus package, extracted, not installed: no
# server is started) checks docs/alerts.yml in the tests.
promtool:
	scripts/promtool.sh .cache/promtool

# Unit tests only: -short makes test/e2e's TestMain return at once (every
# e2e test needs root, libvirtd and the test guest).
test-unit:
	$(GO) test -count=1 -short ./...

test-e2e: setup-tests guest build
	$(GO) run ./test/sweep/cmd/sweep
	$(GO) test -count=1 -timeout 35m -v ./test/e2e/

# Benchmarks print "bench <name>: <metric> godwit=<v> baseline=<v> ratio=<r>".
# BENCH='-run create-boot -runs 9' picks some (see bench/README.md).
BENCH   ?= -all
bench: setup-bench guest build
	$(GO) run ./bench/cmd/bench $(BENCH)

# The Python client's wheel (clients/python, standard library only) in
# bin/, built with Debian's python3 and nothing from PyPI.
PYTHON  ?= /usr/bin/python3
python:
	$(PYTHON) clients/python/tools/build_wheel.py bin

clean:
	rm -rf bin
