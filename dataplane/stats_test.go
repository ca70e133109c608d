package dataplane

import (
	"net/netip"
	"testing"

	"github.com/culvert-lb/culvert/internal/header"
	pt "github.com/culvert-lb/culvert/internal/packettest"
)

// TestServiceAndBackendStats: after N flows of one packet each way, the
// service and its backends count N new flows and every transmitted frame
// and byte; frames that are not the flow's own (a fragmentation-needed
// answer) or never leave (TX ring full) are not counted.
func TestServiceAndBackendStats(t *testing.T) {
	const n = 40
	sumBackends := func(bs []BackendStats) (s BackendStats) {
		for _, b := range bs {
			s.Packets += b.Packets
			s.Bytes += b.Bytes
			s.NewFlows += b.NewFlows
			s.Active += b.Active
		}
		return s
	}
	for _, tc := range []struct {
		mode    Mode
		replies bool // nat: the backend answers through the appliance
	}{
		{ModeNAT, true},
		{ModeDSR, false},
		{ModeIPIP, false},
	} {
		t.Run(tc.mode.String(), func(t *testing.T) {
			l := newLab(t, labConfig(tc.mode, header.ProtoTCP), Options{})
			var bytes uint64
			perBackend := map[int]uint64{}
			for i := range n {
				cl := clientEP(uint16(20000 + i))
				out := l.one(pt.TCP4(cl, vipEP(), pt.FlagSYN, nil))
				bytes += uint64(len(out))
				b := backendOf(t, out)
				perBackend[b]++
				if tc.replies {
					sport := uint16(pt.Decode(out).TCP().SrcPort)
					be := pt.Endpoint{MAC: beMACs[b], Addr: netip.AddrPortFrom(beAddrs[b], backendPort)}
					loc := pt.Endpoint{MAC: selfMAC, Addr: netip.AddrPortFrom(localAddr4, sport)}
					out = l.one(pt.TCP4(be, loc, pt.FlagSYN|pt.FlagACK, []byte("answer")))
					bytes += uint64(len(out))
					perBackend[b]++
				}
			}
			packets := uint64(n)
			if tc.replies {
				packets *= 2
			}
			ss := l.dp.ServiceStats()
			if len(ss) != 1 {
				t.Fatalf("%d services, want 1", len(ss))
			}
			if want := (ServiceStats{Packets: packets, Bytes: bytes, NewFlows: n}); ss[0] != want {
				t.Errorf("service stats %+v, want %+v", ss[0], want)
			}
			bs := l.dp.BackendStats()
			if len(bs) != len(beAddrs) {
				t.Fatalf("%d backends, want %d", len(bs), len(beAddrs))
			}
			if want := (BackendStats{Packets: packets, Bytes: bytes, NewFlows: n, Active: n}); sumBackends(bs) != want {
				t.Errorf("backend stats sum %+v, want %+v", sumBackends(bs), want)
			}
			for b, got := range bs {
				if got.Packets != perBackend[b] {
					t.Errorf("backend %d: %d packets, want %d", b, got.Packets, perBackend[b])
				}
			}
			if len(perBackend) < 2 {
				t.Errorf("all %d flows went to one backend: the per-backend check shows little", n)
			}
			if s := l.dp.Stats(); s.TX != packets || s.TXBytes != bytes {
				t.Errorf("worker counted tx %d (%d bytes), per-service %d (%d bytes)", s.TX, s.TXBytes, packets, bytes)
			}
		})
	}

	t.Run("not-counted", func(t *testing.T) {
		l := newLab(t, labConfig(ModeIPIP, header.ProtoTCP), Options{})
		cl := clientEP(45000)
		syn := l.one(pt.TCP4(cl, vipEP(), pt.FlagSYN, nil, pt.WithDF()))
		// Too big once encapsulated: answered with fragmentation-needed.
		l.one(pt.TCP4(cl, vipEP(), pt.FlagACK, nil, pt.WithDF(), pt.WithPayloadLen(1500-40)))
		// A TX ring with room for one frame of the two.
		l.q.SetTXLimit(1)
		r := l.run(pt.TCP4(cl, vipEP(), pt.FlagACK, nil), pt.TCP4(cl, vipEP(), pt.FlagACK, nil))
		if len(r.tx) != 1 {
			t.Fatalf("%d frames sent, want 1", len(r.tx))
		}
		want := ServiceStats{Packets: 2, Bytes: uint64(len(syn) + len(r.tx[0])), NewFlows: 1}
		if got := l.dp.ServiceStats()[0]; got != want {
			t.Errorf("service stats %+v, want %+v", got, want)
		}
		if got := sumBackends(l.dp.BackendStats()); got.Packets != 2 || got.NewFlows != 1 {
			t.Errorf("backend stats sum %+v, want 2 packets and 1 new flow", got)
		}
	})
}

// TestWorkerStats: per-worker counters are indexed by worker ID and sum
// to Stats.
func TestWorkerStats(t *testing.T) {
	l := newLab(t, labConfig(ModeDSR, header.ProtoUDP), Options{Workers: 2})
	l.one(pt.UDP4(clientEP(1), vipEP(), nil))
	l.one(pt.UDP4(clientEP(2), vipEP(), nil))
	ws := l.dp.WorkerStats()
	if len(ws) != 2 {
		t.Fatalf("%d workers, want 2", len(ws))
	}
	if ws[0].RX != 2 || ws[0].TX != 2 || ws[1] != (Stats{}) {
		t.Errorf("worker stats rx=%d tx=%d, worker 1 %+v", ws[0].RX, ws[0].TX, ws[1])
	}
}

// TestApplyRefusesTooManyServices: Options.MaxServices bounds the
// configuration, since per-service counters are sized by it.
func TestApplyRefusesTooManyServices(t *testing.T) {
	l := newLab(t, labConfig(ModeDSR, header.ProtoUDP), Options{MaxServices: 1})
	c := labConfig(ModeDSR, header.ProtoUDP)
	s := c.Services[0]
	s.Port++
	c.Services = append(c.Services, s)
	if err := l.dp.Apply(c); err == nil {
		t.Fatal("Apply took 2 services with MaxServices 1")
	}
}

// TestServiceStatsTwoArmed: frames copied to another link's queue count
// for their flow like frames sent from their own queue.
func TestServiceStatsTwoArmed(t *testing.T) {
	// The service is ID 1, so that an untagged copy (tag zero) would show
	// as a count for ID 0.
	cfg := twoArmConfig(ModeDSR, header.ProtoTCP, 0)
	cfg.Services = append([]Service{{Removed: true}}, cfg.Services...)
	l := newTwoLab(t, cfg)
	var in [2][][]byte
	for i := range 10 {
		in[0] = append(in[0], pt.TCP4(clientEP(uint16(3000+i)), vipEP(), pt.FlagSYN, nil))
	}
	out := l.run(in)
	var bytes uint64
	for _, f := range out[1] {
		bytes += uint64(len(f))
	}
	if len(out[1]) != 10 {
		t.Fatalf("%d frames left by the backend link, want 10", len(out[1]))
	}
	ss := l.dp.ServiceStats()
	if want := (ServiceStats{Packets: 10, Bytes: bytes, NewFlows: 10}); ss[1] != want || ss[0] != (ServiceStats{}) {
		t.Errorf("service stats %+v, want [{} %+v]", ss, want)
	}
}

// TestStatsWhileRunning: the per-service, per-backend and per-worker sums
// may be read while the worker polls (run with -race).
func TestStatsWhileRunning(t *testing.T) {
	l := newLab(t, labConfig(ModeDSR, header.ProtoUDP), Options{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 200 {
			l.q.Inject(pt.UDP4(clientEP(uint16(1+i%50)), vipEP(), nil))
			l.w.Poll()
			l.q.DiscardTX()
		}
	}()
	var last uint64
	for running := true; running; {
		select {
		case <-done:
			running = false
		default:
		}
		s := l.dp.ServiceStats()[0].Packets
		if s < last {
			t.Fatalf("service packets went back from %d to %d", last, s)
		}
		last = s
		_ = l.dp.BackendStats()
		_ = l.dp.WorkerStats()
	}
	if got := l.dp.ServiceStats()[0]; got.Packets != 200 || got.NewFlows != 50 {
		t.Errorf("service stats %+v, want 200 packets and 50 new flows", got)
	}
}
