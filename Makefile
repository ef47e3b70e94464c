# godwit: `make demo` runs a VM on a fresh machine, `make test` runs every test.
# Both install and start what they need (Debian packages, libvirtd, the test guest).

GO      ?= go
export CGO_ENABLED := 0
export PATH := $(PATH):/usr/local/go/bin
BIN     := bin/godwit
GUEST   := .cache/guest

.PHONY: all build setup guest demo demo-stop test test-unit test-e2e bench vet fmt-check clean

all: build

build:
	$(GO) build -o $(BIN) ./cmd/godwit

# Install QEMU/libvirt if missing, fix /dev/kvm, start virtlogd + libvirtd.
setup:
	scripts/host-setup.sh

# The tiny test guest: Debian kernel + busybox initramfs (.cache/guest).
guest:
	test/guest/build.sh $(GUEST)

demo: setup guest build
	scripts/demo.sh

demo-stop: build
	scripts/demo.sh stop

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed: $$out"; exit 1; fi

vet:
	$(GO) vet ./...

# Unit tests, then the e2e tests on a real libvirtd with real guests.
test: setup guest build fmt-check vet
	$(GO) test -count=1 -p 2 -timeout 35m ./...

test-unit:
	$(GO) test -count=1 -short ./...

test-e2e: setup guest build
	$(GO) test -count=1 -timeout 35m -v ./test/e2e/

# Benchmarks print "bench <name>: <metric> godwit=<v> baseline=<v> ratio=<r>".
# BENCH='-run create-boot -runs 9' picks some (see bench/README.md).
BENCH   ?= -all
bench: setup guest build
	$(GO) run ./bench/cmd/bench $(BENCH)

clean:
	rm -rf bin
