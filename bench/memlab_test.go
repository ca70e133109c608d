package bench

import (
	"math"
	"testing"

	"github.com/culvert-lb/culvert/appliance"
)

// TestMemLab: in every mode, every connection and datagram completes end to
// end with valid checksums, and the backends share the load by weight.
func TestMemLab(t *testing.T) {
	for _, mode := range []string{"nat", "dsr", "ipip"} {
		t.Run(mode, func(t *testing.T) {
			r, err := RunMemLab(appliance.Default(mode), MemLabOptions{TCPConns: 2000, UDPDatagrams: 400})
			if err != nil {
				t.Fatal(err)
			}
			if r.TCPOK != r.TCPConns || r.UDPOK != r.UDPSent || len(r.Problems) > 0 {
				t.Fatalf("tcp %d/%d udp %d/%d problems %v", r.TCPOK, r.TCPConns, r.UDPOK, r.UDPSent, r.Problems)
			}
			if r.Stats.Drop != 0 {
				t.Fatalf("drops: %v", r.Stats.Drops)
			}
			var wsum uint32
			total := 0
			for _, b := range r.Backends {
				wsum += b.Weight
				total += b.TCP + b.UDP
			}
			for _, b := range r.Backends {
				got := float64(b.TCP+b.UDP) / float64(total)
				want := float64(b.Weight) / float64(wsum)
				if math.Abs(got-want) > 0.06 {
					t.Errorf("backend %v got %.3f of the load, weight says %.3f", b.Addr, got, want)
				}
			}
			t.Logf("\n%s", Format([]*MemLabResult{r}))
		})
	}
}
