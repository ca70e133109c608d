# Culvert build and test entry points. `make setup` once on a fresh machine,
# then `make demo` (the main job on the built-in default) and `make test`.

GO       ?= go
PKGS     ?= ./...
FUZZTIME ?= 10s
BENCHTIME ?= 1s

.PHONY: all setup build test test-short fuzz bench bench-core demo vet fmt clean

all: build

# Everything the build and the tests need: Go modules, and the Debian
# packages the privileged lab tests use (root only; skipped otherwise).
setup:
	$(GO) mod download
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iproute2 keepalived haproxy netsniff-ng nftables >/dev/null; \
	else echo "setup: not root or no apt-get: skipping Debian packages"; fi

build:
	$(GO) build -o bin/culvert ./cmd/culvert

vet:
	$(GO) vet $(PKGS)
	@test -z "$$(gofmt -l .)" || { echo "gofmt needed:"; gofmt -l .; exit 1; }

# The test command CI runs (README "Tests").
test: vet
	$(GO) test -count=1 $(PKGS)
	$(GO) test -count=1 -race -short ./conntrack/ ./dataplane/... ./nat/ ./nic/ ./appliance/flowsync/
	$(MAKE) fuzz FUZZTIME=$(FUZZTIME)

test-short:
	$(GO) test -short $(PKGS)

# Each fuzz target runs briefly; failures leave their input in testdata/fuzz.
fuzz:
	@set -e; for spec in \
		internal/header:FuzzIPv4 internal/header:FuzzL4Rewrite \
		dataplane:FuzzDecode dataplane:FuzzPipeline \
		conntrack:FuzzTable nat:FuzzRewrite nat:FuzzPortPool \
		dataplane/sched:FuzzFlowHash dataplane/sched:FuzzNewMaglev \
		appliance:FuzzParse nic:FuzzXSKPort appliance/vrrp:FuzzParse \
		appliance/vrrp:FuzzReceive appliance/flowsync:FuzzReceive; do \
		pkg=$${spec%%:*}; fn=$${spec##*:}; \
		echo "fuzz $$pkg $$fn ($(FUZZTIME))"; \
		if ! $(GO) test -run '^$$' -fuzz "^$$fn\$$" -fuzztime $(FUZZTIME) -fuzzminimizetime 2s ./$$pkg/ > /tmp/culvert-fuzz.log 2>&1; then \
			tail -40 /tmp/culvert-fuzz.log; exit 1; \
		fi; \
	done

# Dataplane core benchmarks (issue targets); about 5 minutes.
bench-core:
	$(GO) test -run '^$$' -bench . -benchmem -benchtime $(BENCHTIME) ./dataplane/ ./conntrack/ ./dataplane/sched/ ./nat/ ./internal/header/

# culvert bench (root): Culvert next to the XDP and AF_XDP ceilings,
# nftables, HAProxy and trafgen on namespace labs; about 8 minutes.
# Writes bench.json and bench.html.
bench: build
	./bin/culvert bench --json bench.json --html bench.html

# AF_XDP queue against asavie/xdp's Socket on a veth (root): the figures
# behind replacing its rings (see nic/xdp_asavie_linux_test.go).
bench-asavie:
	$(GO) test -tags asavie -run '^$$' -bench 'AsavieGetDescs|TransmitNothing|XDPReflect' -benchmem ./nic/

demo: build
	./bin/culvert demo

fmt:
	gofmt -w .

clean:
	rm -rf bin
