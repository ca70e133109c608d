package suite

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	"github.com/culvert-lb/culvert/bench/lab"
	"github.com/culvert-lb/culvert/bench/peer"
	"github.com/culvert-lb/culvert/bench/pktgen"
	"github.com/culvert-lb/culvert/internal/header"
)

// connRate measures new TCP connections per second through target on a
// fresh two-armed lab with real servers, Repeats trials of ConnTrial.
func (b *bencher) connRate(ctx context.Context, target string) ConnRate {
	c := ConnRate{Target: target, Concurrency: b.opt.ConnConcurrency}
	l, err := lab.Up(ctx, lab.Options{Topology: lab.TwoArmed})
	if err != nil {
		c.Error = err.Error()
		return c
	}
	defer l.Down()
	dst := netip.AddrPortFrom(l.VIP, 80)
	switch target {
	case ConnDirect:
		dst = netip.AddrPortFrom(l.Backends[0].Addr, 80)
	case ConnHAProxy:
		h, err := peer.StartHAProxy(l, peer.HAProxyConfig{CPU: b.opt.DUTCPU})
		if err != nil {
			c.Error = err.Error()
			return c
		}
		defer h.Stop()
	case ConnNFTables:
		n, err := peer.StartNFTables(l, peer.NFTablesConfig{})
		if err != nil {
			c.Error = err.Error()
			return c
		}
		defer n.Close()
	case ConnCulvert:
		stop, err := b.startCulvert(ctx, l, "nat")
		if err != nil {
			c.Error = err.Error()
			return c
		}
		defer stop()
	default:
		c.Error = fmt.Sprintf("unknown target %q", target)
		return c
	}
	if err := b.place(l, target != ConnCulvert); err != nil {
		c.Error = "placement: " + err.Error()
		return c
	}
	// Warm-up: until a connection goes through (neighbours, ARP), at most 15 s.
	deadline := time.Now().Add(15 * time.Second)
	for {
		res, err := peer.RunConnRate(ctx, l.Client, peer.ConnRateConfig{Target: dst, Concurrency: 1, MaxConns: 5, Duration: time.Second})
		if err == nil && res.Conns > 0 {
			break
		}
		if time.Now().After(deadline) {
			c.Error = fmt.Sprintf("no connection through %s within 15 s: %v %v", target, err, res)
			return c
		}
		time.Sleep(100 * time.Millisecond)
	}
	var rates []float64
	for i := 0; i < b.opt.Repeats; i++ {
		res, err := peer.RunConnRate(ctx, l.Client, peer.ConnRateConfig{Target: dst, Concurrency: b.opt.ConnConcurrency, Duration: b.opt.ConnTrial})
		if err != nil {
			c.Error = err.Error()
			return c
		}
		b.progress("conns %s: trial %d: %s", target, i+1, res)
		rates = append(rates, res.Rate())
		for _, f := range res.Failures {
			c.Failures += f
		}
		// The last trial's latencies stand for the target.
		us := func(d time.Duration) float64 { return float64(d) / 1e3 }
		c.ConnectP50, c.ConnectP99 = us(res.Connect.P50), us(res.Connect.P99)
		c.RequestP50, c.RequestP99, c.RequestP999 = us(res.Request.P50), us(res.Request.P99), us(res.Request.P999)
		time.Sleep(200 * time.Millisecond)
	}
	c.Rate = Summarize(rates)
	return c
}

// generatorVsTrafgen sends flat out from the router's uplink into an XDP
// drop sink on its peer (the appliance's client side, no DUT), first with
// the generator, then with trafgen, Repeats trials each, both on GenCPU.
func (b *bencher) generatorVsTrafgen(ctx context.Context) GenCompare {
	var g GenCompare
	r := &rig{b: b, dut: "generator", size: 64}
	l, err := lab.Up(ctx, lab.Options{Topology: lab.TwoArmed, NoServers: true})
	if err != nil {
		g.Error = err.Error()
		return g
	}
	r.lab = l
	defer r.close()
	var sink *pktgen.XDPSink
	err = l.Appliance.Do(func() error {
		var err error
		sink, err = pktgen.NewXDPSink(pktgen.SinkConfig{Iface: l.ClientSide.Name, Match: pktgen.Match{Proto: header.ProtoUDP, DstPort: 7}})
		return err
	})
	if err != nil {
		g.Error = err.Error()
		return g
	}
	r.sinks = append(r.sinks, sink)
	if err := r.openGenerator(64); err != nil {
		g.Error = err.Error()
		return g
	}
	up := l.Router.LinkOn(lab.SegmentUplink)
	var ours, theirs []float64
	for i := 0; i < b.opt.Repeats; i++ {
		s, err := r.trial(ctx, 0, b.opt.Trial)
		if err != nil {
			g.Error = err.Error()
			return g
		}
		ours = append(ours, s.Received)
	}
	// trafgen keeps its socket: close ours so the link is its own.
	r.q.Close()
	r.q = nil
	for i := 0; i < b.opt.Repeats; i++ {
		before, _ := r.received()
		start := time.Now()
		res, err := peer.RunTrafgen(ctx, l.Router, peer.TrafgenConfig{Iface: up.Name, SrcMAC: up.MAC, DstMAC: l.ClientSide.MAC,
			Src: r.tmpl.Spec().Src, Dst: l.VIP, DstPort: 7, Flows: b.opt.Flows, CPU: b.opt.GenCPU, Duration: b.opt.Trial})
		if err != nil {
			g.Error = "trafgen: " + err.Error()
			break
		}
		time.Sleep(50 * time.Millisecond)
		after, _ := r.received()
		// trafgen's own setup is in its wall time; its rate at the sink
		// over its reported wall time is the conservative figure, and the
		// packets it says it sent over the same time are the other.
		wall := res.Wall
		if wall <= 0 {
			wall = time.Since(start)
		}
		theirs = append(theirs, float64(after-before)/wall.Seconds())
		b.progress("trafgen: trial %d: %.0f pps at the sink (it reports %.0f sent)", i+1, theirs[len(theirs)-1], res.PPS())
	}
	g.Culvert, g.Trafgen = Summarize(ours), Summarize(theirs)
	return g
}
