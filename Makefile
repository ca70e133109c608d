# Culvert build and test entry points. `make setup` once on a fresh machine,
# then `make demo` (the main job on the built-in default) and `make test`.

GO       ?= go
PKGS     ?= ./...
FUZZTIME ?=
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
	$(MAKE) fuzz

test-short:
	$(GO) test -short $(PKGS)

# Each fuzz target runs for a fixed number of executions (about 10 s each
# here), failures leaving their input in testdata/fuzz. A count, not a
# duration: a -fuzztime duration races Go's fuzzing coordinator at its
# deadline and fails with "context deadline exceeded" and no crasher on a
# loaded machine (go.dev/issue/75804). `make fuzz FUZZTIME=1m` fuzzes every
# target for that long instead.
FUZZ_TARGETS = \
	internal/header:FuzzIPv4:500000 internal/header:FuzzL4Rewrite:500000 \
	dataplane:FuzzDecode:150000 dataplane:FuzzPipeline:8000 \
	conntrack:FuzzTable:15000 nat:FuzzRewrite:250000 nat:FuzzPortPool:200000 \
	dataplane/sched:FuzzFlowHash:500000 dataplane/sched:FuzzNewMaglev:200000 \
	appliance:FuzzParse:60000 nic:FuzzXSKPort:8000 \
	appliance/vrrp:FuzzParse:300000 appliance/vrrp:FuzzReceive:250000 \
	appliance/flowsync:FuzzReceive:200000

fuzz:
	@set -e; for spec in $(FUZZ_TARGETS); do \
		pkg=$${spec%%:*}; rest=$${spec#*:}; fn=$${rest%%:*}; n=$${rest##*:}; \
		budget="$(FUZZTIME)"; [ -n "$$budget" ] || budget="$${n}x"; \
		echo "fuzz $$pkg $$fn ($$budget)"; \
		if ! $(GO) test -run '^$$' -fuzz "^$$fn\$$" -fuzztime "$$budget" -fuzzminimizetime 2s -timeout 5m ./$$pkg/ > /tmp/culvert-fuzz.log 2>&1; then \
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
