package main

import (
	"context"
	"testing"

	"github.com/culvert-lb/culvert/bench/lab"
)

// TestLabTwoArmed: the appliance on two interfaces, the client side on the
// router's uplink and the server side on the backends' segment. In each
// mode HTTP over new connections and UDP echo through the VIP all succeed
// and reach every backend in roughly the weighted proportion (1:1:2), and
// frames cross between the interfaces: every frame toward a backend
// arrives on the client side and leaves by the server side, copied
// (CrossLink); in nat the replies cross back. In dsr and ipip the backends
// answer the client directly, through the router on their segment. With a
// backend behind the router, the appliance reaches it through the router's
// server-segment address, out of the server side.
func TestLabTwoArmed(t *testing.T) {
	for _, c := range []struct {
		name   string
		mode   string
		queues int
		routed int // backends behind the router, reached through it on the server side
	}{
		{"nat", "nat", 1, 0},
		{"dsr", "dsr", 1, 0},
		{"ipip", "ipip", 1, 0},
		{"nat/2-queues", "nat", 2, 0},
		{"nat/routed-backend", "nat", 1, 1},
		{"ipip/routed-backend", "ipip", 1, 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := labForTestWith(t, c.mode, lab.Options{Topology: lab.TwoArmed, ApplianceQueues: c.queues, Routed: c.routed})
			if r.lab.ClientSide.Name == r.lab.ServerSide.Name {
				t.Fatal("the lab is not two-armed")
			}
			tr := r.traffic(context.Background(), 300, 60)
			checkSpread(t, r, tr)
			s, err := r.stopDaemon()
			if err != nil {
				t.Fatal(err)
			}
			d := s.Dataplane
			t.Logf("%s: per backend %v; dataplane rx %d tx %d cross-link %d drop %d %v; client-side steering %+v",
				c.name, tr.PerBackend, d.RX, d.TX, d.CrossLink, d.Drop, s.DropReasons, s.Steering)
			if d.NewFlows < uint64(tr.HTTPOK) {
				t.Errorf("dataplane saw %d new flows for %d connections", d.NewFlows, tr.HTTPOK)
			}
			// Each connection sends at least SYN, ACK and request toward
			// the backend, and in nat gets at least SYN-ACK and response
			// back; each echo is one datagram each way.
			want := uint64(3*tr.HTTPOK + tr.UDPOK)
			if c.mode == "nat" {
				want += uint64(2*tr.HTTPOK + tr.UDPOK)
			}
			if d.CrossLink < want {
				t.Errorf("%d frames crossed between the interfaces, want at least %d", d.CrossLink, want)
			}
			if n := s.DropReasons["no-tx-frame"]; n > 0 {
				t.Errorf("%d frames found no free frame on the other interface", n)
			}
		})
	}
}
