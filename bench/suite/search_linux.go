package suite

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/culvert-lb/culvert/bench/pktgen"
)

// throughput measures one DUT at one frame size on a fresh lab.
func (b *bencher) throughput(ctx context.Context, dut string, size int) Throughput {
	t := Throughput{DUT: dut, Size: size, Flows: b.opt.Flows}
	r, err := b.newRig(ctx, dut, size)
	if err != nil {
		t.Error = err.Error()
		return t
	}
	defer r.close()
	t.Notes = r.notes
	if err := r.attachSinks(); err != nil {
		t.Error = "sinks: " + err.Error()
		return t
	}
	if err := r.warmUp(ctx); err != nil {
		t.Error = err.Error()
		return t
	}
	if err := r.search(ctx, &t); err != nil {
		t.Error = err.Error()
		return t
	}
	t.Latency = r.latency(ctx, t.PPS.Median*b.opt.LatencyLoad)
	return t
}

// trial offers rate (0: as fast as the generator goes) for d and returns
// what arrived.
func (r *rig) trial(ctx context.Context, rate float64, d time.Duration) (Step, error) {
	before, err := r.received()
	if err != nil {
		return Step{}, err
	}
	st, err := r.send(ctx, rate, d)
	if err != nil {
		return Step{}, err
	}
	time.Sleep(50 * time.Millisecond) // frames in flight reach the sinks
	after, err := r.received()
	if err != nil {
		return Step{}, err
	}
	got := after - before
	s := Step{Offered: float64(st.Sent) / st.Elapsed.Seconds(), Received: float64(got) / st.Elapsed.Seconds()}
	if st.Sent > 0 {
		s.Loss = max(0, 1-float64(got)/float64(st.Sent))
	}
	r.b.progress("%s %dB: offered %.0f pps, received %.0f pps, loss %.3f%%", r.dut, r.size, s.Offered, s.Received, 100*s.Loss)
	return s, nil
}

// warmUp sends at a low rate until frames reach the sinks: the DUT has
// resolved its neighbours and the bridge knows every MAC.
func (r *rig) warmUp(ctx context.Context) error {
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		s, err := r.trial(ctx, 20000, 200*time.Millisecond)
		if err != nil {
			return err
		}
		if s.Loss < 0.01 {
			// One more, longer, to settle.
			_, err := r.trial(ctx, 50000, 500*time.Millisecond)
			return err
		}
	}
	return errors.New("warm-up: the DUT forwarded nothing to the sinks within 15 s")
}

// search finds the highest rate with loss under the target (RFC 2544
// section 26.1), then confirms it with Repeats trials.
func (r *rig) search(ctx context.Context, t *Throughput) error {
	o := r.b.opt
	full, err := r.trial(ctx, 0, o.SearchTrial)
	if err != nil {
		return err
	}
	t.Search = append(t.Search, full)
	rate := full.Offered
	if full.Loss > o.LossTarget {
		lo, hi := 0.0, full.Offered
		rate = full.Received * 0.98
		for i := 0; i < o.Steps; i++ {
			s, err := r.trial(ctx, rate, o.SearchTrial)
			if err != nil {
				return err
			}
			t.Search = append(t.Search, s)
			if s.Loss > o.LossTarget {
				// A shared machine stalls now and then: a step fails only
				// if a second trial at the same rate fails too, or one
				// stall would send the search down for good.
				if s, err = r.trial(ctx, rate, o.SearchTrial); err != nil {
					return err
				}
				t.Search = append(t.Search, s)
			}
			if s.Loss <= o.LossTarget {
				lo = rate
			} else {
				hi = rate
			}
			rate = (lo + hi) / 2
		}
		rate = lo
		if rate == 0 {
			return fmt.Errorf("no rate with loss under %.2f%% (last %+v)", 100*o.LossTarget, t.Search[len(t.Search)-1])
		}
	} else {
		t.GenLimited = true
		rate = 0 // as fast as it goes
	}
	var pps, loss []float64
	for i := 0; i < o.Repeats; i++ {
		s, err := r.trial(ctx, rate, o.Trial)
		if err != nil {
			return err
		}
		t.Trials = append(t.Trials, s)
		pps = append(pps, s.Received)
		loss = append(loss, s.Loss)
	}
	t.PPS, t.Loss = Summarize(pps), Summarize(loss)
	bits := float64(r.size) * 8 / 1e9
	t.Gbps = Summary{Median: t.PPS.Median * bits, Min: t.PPS.Min * bits, Max: t.PPS.Max * bits}
	return nil
}

// latency replaces the sinks with AF_XDP receivers and measures one-way
// latency for a trial at rate.
func (r *rig) latency(ctx context.Context, rate float64) *Latency {
	lat := &Latency{LoadPPS: rate}
	for _, s := range r.sinks {
		s.Close()
	}
	r.sinks = nil
	var rxs []*pktgen.Receiver
	defer func() {
		for _, rx := range rxs {
			rx.Close()
		}
	}()
	for _, h := range r.lab.Backends {
		var rx *pktgen.Receiver
		err := h.Do(func() error {
			var err error
			rx, err = pktgen.NewReceiver(pktgen.ReceiverConfig{Iface: h.Links[0].Name, Match: r.sinkMatch()})
			return err
		})
		if err != nil {
			lat.Error = err.Error()
			return lat
		}
		rxs = append(rxs, rx)
	}
	rctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for _, rx := range rxs {
		wg.Add(1)
		go func() { defer wg.Done(); rx.Run(rctx) }()
	}
	_, err := r.send(ctx, rate, r.b.opt.Trial)
	time.Sleep(100 * time.Millisecond)
	cancel()
	wg.Wait()
	if err != nil {
		lat.Error = err.Error()
		return lat
	}
	var all pktgen.RxStats
	for _, rx := range rxs {
		s := rx.Stats()
		all.Merge(&s)
	}
	h := &all.Latency
	us := func(d time.Duration) float64 { return float64(d) / 1e3 }
	lat.P50, lat.P99, lat.P999, lat.Max = us(h.Percentile(0.5)), us(h.Percentile(0.99)), us(h.Percentile(0.999)), us(h.Max())
	recv, _, reord, lost := all.Total()
	lat.Frames, lat.Reordered, lat.Lost = recv, reord, lost
	qs := []float64{0, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.995, 0.999, 1}
	for _, q := range qs {
		lat.CDF = append(lat.CDF, [2]float64{us(h.Percentile(q)), q})
	}
	return lat
}

// send runs the generator at rate (0: flat out) for d. Each run gets a
// generator of its own (the rate is part of its configuration); they share
// the queue one after the other.
func (r *rig) send(ctx context.Context, rate float64, d time.Duration) (pktgen.Stats, error) {
	g, err := pktgen.NewGenerator(r.q, r.tmpl, pktgen.GeneratorConfig{Rate: rate, Pin: true, CPU: r.b.opt.GenCPU})
	if err != nil {
		return pktgen.Stats{}, err
	}
	return g.Run(ctx, d, 0)
}
