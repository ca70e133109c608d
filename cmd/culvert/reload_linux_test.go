package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/culvert-lb/culvert/appliance"
)

// TestLabReload: SIGHUP applies an edited file live (a backend removed,
// another re-weighted) and new connections follow it; a broken file is
// refused with its location and the running configuration keeps serving;
// a change to what cannot change live (interfaces) is refused too.
func TestLabReload(t *testing.T) {
	r := labForTest(t, "nat")
	path := filepath.Join(r.dir, "culvert.yaml")
	spec, err := appliance.LoadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	write := func(b []byte) {
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		r.daemon.Process.Signal(syscall.SIGHUP)
		time.Sleep(300 * time.Millisecond)
	}
	// b0 leaves the web pool; b1 weighs 3, b2 1.
	next := *spec
	next.Services = append([]appliance.ServiceSpec(nil), spec.Services...)
	web := next.Services[0]
	web.Backends = []appliance.BackendSpec{web.Backends[1], web.Backends[2]}
	web.Backends[0].Weight, web.Backends[1].Weight = 3, 1
	next.Services[0] = web
	b, _ := appliance.Marshal(&next)
	write(b)
	tr := r.traffic(context.Background(), 200, 0)
	if tr.HTTPOK != 200 || tr.PerBackend["b0"] != 0 {
		t.Fatalf("after reload: %d/200 ok, per backend %v, errors %v\n%s", tr.HTTPOK, tr.PerBackend, tr.Errors, r.logBuf)
	}
	if share := float64(tr.PerBackend["b1"]) / 200; share < 0.6 || share > 0.9 {
		t.Errorf("b1 (weight 3 of 4) got %.2f of new connections: %v", share, tr.PerBackend)
	}

	// A broken file: refused, the running config keeps serving.
	write([]byte("services:\n  - vip: 198.18.1.1\n    port: [\n"))
	// An interface change: refused.
	moved := next
	moved.Interfaces = []appliance.InterfaceSpec{{Name: "eth9", Queues: 1}}
	b, _ = appliance.Marshal(&moved)
	write(b)
	tr = r.traffic(context.Background(), 50, 10)
	if tr.HTTPOK != 50 || tr.UDPOK != 10 || tr.PerBackend["b0"] != 0 {
		t.Fatalf("after refused reloads: http %d/50 udp %d/10 %v %v", tr.HTTPOK, tr.UDPOK, tr.PerBackend, tr.Errors)
	}
	logs := r.logBuf.String()
	for _, want := range []string{"configuration applied", "reload refused", "culvert.yaml:", "cannot change while running"} {
		if !strings.Contains(logs, want) {
			t.Errorf("daemon log lacks %q:\n%s", want, logs)
		}
	}
}
