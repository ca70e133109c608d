package health_test

import (
	"context"
	"log/slog"
	"net/netip"
	"time"

	"github.com/culvert-lb/culvert/appliance/health"
)

// A Checker wired to rebuild the backend table on each transition.
func Example() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	c := health.New(health.Options{
		Log: slog.Default(),
		OnChange: func(t health.Target, from, to health.State) {
			// Rebuild the Maglev table from the backends whose
			// State(addr).Eligible() is true.
		},
	})
	c.Set([]health.Target{
		{Addr: netip.MustParseAddrPort("192.0.2.10:80"), Spec: health.Spec{Kind: health.KindHTTP, Path: "/healthz"}},
		{Addr: netip.MustParseAddrPort("192.0.2.11:53"), Spec: health.Spec{Kind: health.KindUDP, Send: []byte("ping")}},
	})
	c.Run(ctx) // returns when ctx ends
}
