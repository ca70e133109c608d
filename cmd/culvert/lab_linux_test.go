package main

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/culvert-lb/culvert/appliance"
	"github.com/culvert-lb/culvert/bench/lab"
	"github.com/culvert-lb/culvert/internal/testenv"
)

// labForTest starts mode's lab with this test binary as the daemon.
func labForTest(t *testing.T, mode string) *labRun {
	t.Helper()
	return labForTestWith(t, mode, lab.Options{})
}

func labForTestWith(t *testing.T, mode string, opt lab.Options, edit ...func(*lab.Lab, *appliance.Spec) error) *labRun {
	t.Helper()
	testenv.RequireRoot(t)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	var fn func(*lab.Lab, *appliance.Spec) error
	if len(edit) > 0 {
		fn = edit[0]
	}
	r, err := startLabWith(ctx, mode, opt, exe, []string{"CULVERT_TEST_AS_MAIN=1"}, fn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.stop)
	return r
}

// TestLabForwarding: in each mode, HTTP over new connections and UDP echo
// through the VIP all succeed and reach every backend in roughly the
// weighted proportion (1:1:2).
func TestLabForwarding(t *testing.T) {
	for _, mode := range []string{"nat", "dsr", "ipip"} {
		t.Run(mode, func(t *testing.T) {
			r := labForTest(t, mode)
			tr := r.traffic(context.Background(), 400, 100)
			checkSpread(t, r, tr)
			s, err := r.stopDaemon()
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%s: per backend %v; dataplane rx %d tx %d drop %d %v; steering %+v", mode, tr.PerBackend,
				s.Dataplane.RX, s.Dataplane.TX, s.Dataplane.Drop, s.DropReasons, s.Steering)
			if s.Dataplane.NewFlows < uint64(tr.HTTPOK) {
				t.Errorf("dataplane saw %d new flows for %d connections", s.Dataplane.NewFlows, tr.HTTPOK)
			}
		})
	}
}

// checkSpread requires every request and datagram of tr to have been
// answered, and the requests to spread over the default configuration's
// backends by their weights (1:1:2), within 10 points.
func checkSpread(t *testing.T, r *labRun, tr labTraffic) {
	t.Helper()
	if tr.HTTPOK != tr.HTTPSent || tr.UDPOK != tr.UDPSent {
		t.Fatalf("http %d/%d udp %d/%d errors %v\nlog:\n%s", tr.HTTPOK, tr.HTTPSent, tr.UDPOK, tr.UDPSent, tr.Errors, r.logBuf)
	}
	weights := map[string]float64{"b0": 0.25, "b1": 0.25, "b2": 0.5}
	for name, w := range weights {
		got := float64(tr.PerBackend[name]) / float64(tr.HTTPOK)
		if got < w-0.1 || got > w+0.1 {
			t.Errorf("backend %s got %.2f of requests, weight share %.2f (%v)", name, got, w, tr.PerBackend)
		}
	}
}
