package dataplane

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/culvert-lb/culvert/conntrack"
	"github.com/culvert-lb/culvert/internal/header"
	pt "github.com/culvert-lb/culvert/internal/packettest"
	"github.com/culvert-lb/culvert/nic"
)

// Benchmarks of the whole pipeline on the in-memory queue: each op is one
// packet; batches of BatchSize. The generator side (copying a 64-byte
// template into the queue and stamping the flow's client address and port
// with incremental checksums) is measured alone by BenchmarkGenerator in the
// same run, so its cost can be subtracted.

var benchSizes = []int{10_000, 1_000_000, 10_000_000}

func sizeName(n int) string {
	switch {
	case n >= 1_000_000:
		return fmt.Sprintf("%dM", n/1_000_000)
	case n >= 1000:
		return fmt.Sprintf("%dk", n/1000)
	}
	return fmt.Sprint(n)
}

// flowClient returns the client end of synthetic flow i: 100 000 client
// addresses in 198.18.0.0/15, ports from 1024.
func flowClient(i int) ([4]byte, uint16) {
	a := 198<<24 | 18<<16 | uint32(i%100_000)
	return [4]byte{byte(a >> 24), byte(a >> 16), byte(a >> 8), byte(a)}, uint16(1024 + i/100_000)
}

// benchLocals is enough SNAT addresses for 10M flows plus churn.
func benchLocals(n int) [][4]byte {
	var ls [][4]byte
	for i := 0; i < n; i++ {
		ls = append(ls, [4]byte{198, 19, 128 + byte(i>>8), byte(i)})
	}
	return ls
}

// gen injects batches of frames for chosen flows into a Mem queue.
type gen struct {
	q    *nic.Mem
	tmpl []byte
	rng  uint64
	next int
}

func newGen(q *nic.Mem, proto uint8) *gen {
	var tmpl []byte
	if proto == header.ProtoTCP {
		tmpl = pt.TCP4(clientEP(1024), vipEP(), pt.FlagACK, nil)
	} else {
		tmpl = pt.UDP4(clientEP(1024), vipEP(), make([]byte, 18))
	}
	return &gen{q: q, tmpl: tmpl, rng: 0x9e3779b97f4a7c15}
}

// fill injects one batch of frames of flows given by pick.
func (g *gen) fill(pick func(g *gen) int) {
	umem := g.q.UMEM()
	for j := 0; j < BatchSize; j++ {
		g.q.Inject(g.tmpl)
	}
	// Stamp the flow into each queued frame, as a generator would.
	var d [BatchSize]nic.Desc
	n := g.q.Receive(d[:])
	for j := 0; j < n; j++ {
		f := umem[d[j].Addr : d[j].Addr+uint64(d[j].Len)]
		ip := header.IPv4(f[14:])
		src, port := flowClient(pick(g))
		old := ip.Src()
		ip.SetSrc(src)
		l4 := f[14+20:]
		if ip.Protocol() == header.ProtoTCP {
			t := header.TCP(l4)
			t.UpdateChecksumAddr4(old, src)
			t.SetSrcPort(port)
		} else {
			u := header.UDP(l4)
			u.UpdateChecksumAddr4(old, src)
			u.SetSrcPort(port)
		}
	}
	g.q.Requeue(d[:n])
}

func randomFlow(n int) func(g *gen) int {
	return func(g *gen) int {
		g.rng ^= g.rng << 13
		g.rng ^= g.rng >> 7
		g.rng ^= g.rng << 17
		return int(g.rng % uint64(n))
	}
}

func freshFlow(g *gen) int { g.next++; return g.next }

func benchDataplane(b *testing.B, mode Mode, proto uint8, maxFlows int, locals int, opt Options) (*Dataplane, *Worker, *nic.Mem, *clockFake) {
	cfg := labConfig(mode, proto)
	if mode == ModeNAT {
		cfg.LocalAddrs = benchLocals(locals)
	}
	clk := &clockFake{ns: int64(time.Hour)}
	opt.Workers = 1
	opt.MaxFlows = maxFlows
	opt.Clock = clk.now
	dp, err := New(opt)
	if err != nil {
		b.Fatal(err)
	}
	if err := dp.Apply(cfg); err != nil {
		b.Fatal(err)
	}
	q, _ := nic.NewMem(4*BatchSize, 2048, 256)
	w, err := dp.NewWorker(0, q)
	if err != nil {
		b.Fatal(err)
	}
	return dp, w, q, clk
}

type clockFake struct{ ns int64 }

func (c *clockFake) now() int64 { return c.ns }

// prefill puts n established flows in the table directly.
func prefill(b *testing.B, dp *Dataplane, mode Mode, proto uint8, n int) {
	now := conntrack.Time(dp.clock())
	for i := 0; i < n; i++ {
		src, port := flowClient(i)
		f := conntrack.Flow[conntrack.Key4]{
			Orig:    conntrack.Key4{Src: src, Dst: a4(vipAddr), SrcPort: port, DstPort: vipPort, Proto: proto},
			Backend: uint32(i % 3),
		}
		if mode == ModeNAT {
			f.HasReply = true
			f.Reply = conntrack.Key4{Src: a4(beAddrs[i%3]), Dst: [4]byte{198, 19, 0, byte(i >> 16)}, SrcPort: backendPort, DstPort: uint16(i), Proto: proto}
		} else {
			f.OneWay = true
		}
		st := conntrack.StateEstablished
		if proto == header.ProtoUDP {
			st = conntrack.StateUDP
		}
		if _, err := dp.ct.Insert(&f, st, now); err != nil {
			b.Fatalf("prefill %d: %v", i, err)
		}
	}
}

// BenchmarkEstablished: a packet of an established flow through the whole
// pipeline, flows chosen at random among n live ones.
func BenchmarkEstablished(b *testing.B) {
	for _, mode := range []Mode{ModeNAT, ModeDSR} {
		for _, n := range benchSizes {
			b.Run(fmt.Sprintf("%s/flows=%s", mode, sizeName(n)), func(b *testing.B) {
				if n > 1_000_000 && testing.Short() {
					b.Skip("10M flows: skipped in -short")
				}
				dp, w, q, _ := benchDataplane(b, mode, header.ProtoTCP, n+n/8, 1, Options{})
				prefill(b, dp, mode, header.ProtoTCP, n)
				g := newGen(q, header.ProtoTCP)
				pick := randomFlow(n)
				b.ReportAllocs()
				b.ResetTimer()
				for i := 0; i < b.N; i += BatchSize {
					g.fill(pick)
					w.Poll()
					q.DiscardTX()
				}
				b.StopTimer()
				if s := dp.Stats(); s.TX != s.RX {
					b.Fatalf("tx %d of rx %d; drops %v", s.TX, s.RX, s.Drops)
				}
			})
		}
	}
}

// BenchmarkNewFlow: a first packet (TCP SYN) of a flow never seen, with the
// table held near n live flows: the clock moves 1 s per batch, SYN-SENT
// flows time out after n/64 s, and Sweep runs every batch (its cost is
// included).
func BenchmarkNewFlow(b *testing.B) {
	for _, mode := range []Mode{ModeNAT, ModeDSR} {
		for _, n := range benchSizes {
			b.Run(fmt.Sprintf("%s/flows=%s", mode, sizeName(n)), func(b *testing.B) {
				if n > 1_000_000 && testing.Short() {
					b.Skip("10M flows: skipped in -short")
				}
				life := time.Duration(n/BatchSize) * time.Second
				to := conntrack.DefaultTimeouts()
				to.SynSent = life
				dp, w, q, clk := benchDataplane(b, mode, header.ProtoTCP, n+n/4+4*BatchSize, 256, Options{Timeouts: to})
				g := newGen(q, header.ProtoTCP)
				g.tmpl = pt.TCP4(clientEP(1024), vipEP(), pt.FlagSYN, nil)
				// Warm to steady state: n live flows.
				for i := 0; i < n+2*BatchSize; i += BatchSize {
					g.fill(freshFlow)
					w.Poll()
					q.DiscardTX()
					clk.ns += int64(time.Second)
					dp.Sweep(4 * BatchSize)
				}
				b.ReportAllocs()
				b.ResetTimer()
				for i := 0; i < b.N; i += BatchSize {
					g.fill(freshFlow)
					w.Poll()
					q.DiscardTX()
					clk.ns += int64(time.Second)
					dp.Sweep(4 * BatchSize)
				}
				b.StopTimer()
				s := dp.Stats()
				if s.TX != s.RX {
					b.Fatalf("tx %d of rx %d; drops %v", s.TX, s.RX, s.Drops)
				}
				b.ReportMetric(float64(dp.ct.Stats().Live), "live-flows")
			})
		}
	}
}

// BenchmarkTwoArmed: a packet of an established flow (10k flows) entering
// on the client-side queue and leaving by the server-side one, copied into
// a chunk allocated there, against the same packet one-armed (rewritten in
// place). The difference is the cost of the copy and of Alloc.
func BenchmarkTwoArmed(b *testing.B) {
	const n = 10_000
	for _, mode := range []Mode{ModeNAT, ModeDSR} {
		for _, arms := range []string{"one-armed", "two-armed"} {
			b.Run(fmt.Sprintf("%s/%s", mode, arms), func(b *testing.B) {
				dp, w, q, _ := benchDataplane(b, mode, header.ProtoTCP, n+n/8, 1, Options{})
				var srv *nic.Mem
				if arms == "two-armed" {
					cfg := twoArmConfig(mode, header.ProtoTCP, 0)
					var err error
					opt := dp.opt
					opt.Links = 2
					if dp, err = New(opt); err != nil {
						b.Fatal(err)
					}
					if err := dp.Apply(cfg); err != nil {
						b.Fatal(err)
					}
					srv, _ = nic.NewMem(4*BatchSize, 2048, 256)
					if w, err = dp.NewWorker(0, q, srv); err != nil {
						b.Fatal(err)
					}
				}
				prefill(b, dp, mode, header.ProtoTCP, n)
				g := newGen(q, header.ProtoTCP)
				pick := randomFlow(n)
				b.ReportAllocs()
				b.ResetTimer()
				for i := 0; i < b.N; i += BatchSize {
					g.fill(pick)
					w.Poll()
					q.DiscardTX()
					if srv != nil {
						srv.DiscardTX()
					}
				}
				b.StopTimer()
				s := dp.Stats()
				if s.TX != s.RX {
					b.Fatalf("tx %d of rx %d; drops %v", s.TX, s.RX, s.Drops)
				}
				if srv != nil && s.CrossLink != s.TX {
					b.Fatalf("cross-link %d of tx %d", s.CrossLink, s.TX)
				}
			})
		}
	}
}

// BenchmarkGenerator is the cost of the benchmark's own frame supply, to be
// subtracted from the pipeline figures: inject, stamp, receive, discard.
func BenchmarkGenerator(b *testing.B) {
	q, _ := nic.NewMem(4*BatchSize, 2048, 256)
	g := newGen(q, header.ProtoTCP)
	pick := randomFlow(10_000)
	var d [BatchSize]nic.Desc
	b.ReportAllocs()
	for i := 0; i < b.N; i += BatchSize {
		g.fill(pick)
		n := q.Receive(d[:])
		q.Transmit(d[:n])
		q.DiscardTX()
	}
}

// TestPollDoesNotAllocate is the allocation contract of Poll: one-armed
// (one queue) and two-armed (two queues, every frame copied to the other
// link's queue, in both directions for nat), with established flows and a
// new flow in every batch.
func TestPollDoesNotAllocate(t *testing.T) {
	for _, mode := range []Mode{ModeNAT, ModeDSR, ModeIPIP} {
		t.Run("one-armed/"+mode.String(), func(t *testing.T) {
			l := newLab(t, labConfig(mode, header.ProtoTCP), Options{})
			frames := make([][]byte, BatchSize)
			for i := range frames {
				frames[i] = pt.TCP4(clientEP(uint16(2000+i)), vipEP(), pt.FlagSYN, nil)
			}
			l.run(frames...)
			for i := range frames {
				frames[i] = pt.TCP4(clientEP(uint16(2000+i)), vipEP(), pt.FlagACK, []byte("data"))
			}
			// New flows too: a fresh port each run.
			p := uint16(10000)
			syn := pt.TCP4(clientEP(p), vipEP(), pt.FlagSYN, nil)
			allocs := testing.AllocsPerRun(50, func() {
				for _, f := range frames {
					l.q.Inject(f)
				}
				header.TCP(syn[34:]).SetSrcPort(p)
				p++
				l.q.Inject(syn)
				l.w.Poll()
				l.q.DiscardTX()
			})
			if allocs != 0 {
				t.Errorf("Poll allocates %.1f times per batch", allocs)
			}
			if s := l.dp.Stats(); s.Drop != 0 {
				t.Errorf("drops %v", s.Drops)
			}
		})
		t.Run("two-armed/"+mode.String(), func(t *testing.T) {
			l := newTwoLab(t, twoArmConfig(mode, header.ProtoTCP, 0))
			var in [2][][]byte
			for i := range BatchSize - 1 {
				in[0] = append(in[0], pt.TCP4(clientEP(uint16(2000+i)), vipEP(), pt.FlagSYN, nil))
			}
			out := l.run(in)
			var frames [2][][]byte
			for i := range BatchSize - 1 {
				frames[0] = append(frames[0], pt.TCP4(clientEP(uint16(2000+i)), vipEP(), pt.FlagACK, []byte("data")))
			}
			if mode == ModeNAT {
				// The backends' answers, to the SNAT address and port.
				for _, f := range out[1] {
					p := pt.Decode(f)
					be := pt.Endpoint{MAC: beMACs[backendOf(t, f)], Addr: netip.AddrPortFrom(beAddrs[backendOf(t, f)], uint16(p.TCP().DstPort))}
					loc := pt.Endpoint{MAC: srvMAC, Addr: netip.AddrPortFrom(localAddr4, uint16(p.TCP().SrcPort))}
					frames[1] = append(frames[1], pt.TCP4(be, loc, pt.FlagSYN|pt.FlagACK, []byte("answer")))
				}
			}
			p := uint16(10000)
			syn := pt.TCP4(clientEP(p), vipEP(), pt.FlagSYN, nil)
			allocs := testing.AllocsPerRun(50, func() {
				for i, fs := range frames {
					for _, f := range fs {
						l.q[i].Inject(f)
					}
				}
				header.TCP(syn[34:]).SetSrcPort(p)
				p++
				l.q[0].Inject(syn)
				l.w.Poll()
				l.q[0].DiscardTX()
				l.q[1].DiscardTX()
			})
			if allocs != 0 {
				t.Errorf("Poll allocates %.1f times per round", allocs)
			}
			s := l.dp.Stats()
			if s.Drop != 0 {
				t.Errorf("drops %v", s.Drops)
			}
			if s.CrossLink != s.RX {
				t.Errorf("%d of %d frames crossed links", s.CrossLink, s.RX)
			}
			if mode == ModeNAT && l.q[0].Transmitted == 0 {
				t.Error("no reply crossed back to the client side: the test shows nothing of that path")
			}
		})
	}
}

var _ = netip.Addr{}
