package dataplane

import (
	"bytes"
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/culvert-lb/culvert/conntrack"
	"github.com/culvert-lb/culvert/internal/header"
	pt "github.com/culvert-lb/culvert/internal/packettest"
)

// drainAll returns copies of every queued sync event.
func drainAll(d *Dataplane) []SyncEvent {
	var out []SyncEvent
	d.DrainSync(func(e *SyncEvent) { out = append(out, *e) })
	return out
}

// TestSyncEvents: a new flow, each change of its state and its expiry are
// queued, in that order; packets that change nothing queue nothing.
func TestSyncEvents(t *testing.T) {
	l := newLab(t, labConfig(ModeNAT, header.ProtoTCP), Options{SyncQueue: 64})
	cl := clientEP(40000)
	out := l.one(pt.TCP4(cl, vipEP(), pt.FlagSYN, nil))
	ev := drainAll(l.dp)
	if len(ev) != 1 || ev[0].Remove || ev[0].State != conntrack.StateSynSent || ev[0].Flow.Orig.SrcPort != 40000 {
		t.Fatalf("after SYN: %+v", ev)
	}
	f := ev[0].Flow
	// The backend's SYN-ACK to the SNAT address and port.
	p := pt.Decode(out)
	be := pt.Endpoint{MAC: beMACs[backendOf(t, out)], Addr: netip.AddrPortFrom(beAddrs[backendOf(t, out)], backendPort)}
	loc := pt.Endpoint{MAC: selfMAC, Addr: netip.AddrPortFrom(localAddr4, uint16(p.TCP().SrcPort))}
	l.one(pt.TCP4(be, loc, pt.FlagSYN|pt.FlagACK, nil))
	l.one(pt.TCP4(cl, vipEP(), pt.FlagACK, nil))
	l.one(pt.TCP4(cl, vipEP(), pt.FlagACK, []byte("more")))
	ev = drainAll(l.dp)
	if len(ev) != 2 || ev[0].State != conntrack.StateSynRecv && ev[0].State != conntrack.StateEstablished ||
		ev[1].State != conntrack.StateEstablished || ev[0].Flow != f {
		t.Fatalf("after the handshake and data: %+v", ev)
	}
	// Expiry.
	l.clk.Advance(24 * time.Hour)
	l.dp.Sweep(1 << 20)
	ev = drainAll(l.dp)
	if len(ev) != 1 || !ev[0].Remove || ev[0].Flow != f {
		t.Fatalf("after expiry: %+v", ev)
	}
	if s := l.dp.SyncStats(); s.Pushed != 4 || s.Dropped != 0 || s.Backlog != 0 {
		t.Errorf("stats %+v, want 4 pushed", s)
	}
}

// TestSyncRingFull: a worker never waits for the sync: past the ring's
// size events are dropped and counted, and forwarding goes on.
func TestSyncRingFull(t *testing.T) {
	l := newLab(t, labConfig(ModeDSR, header.ProtoUDP), Options{SyncQueue: 8})
	for i := range 20 {
		l.one(pt.UDP4(clientEP(uint16(30000+i)), vipEP(), []byte("x")))
	}
	s := l.dp.SyncStats()
	if s.Pushed != 8 || s.Dropped != 12 || s.Backlog != 8 {
		t.Errorf("stats %+v, want 8 queued and 12 dropped", s)
	}
	if n := len(drainAll(l.dp)); n != 8 {
		t.Errorf("drained %d events, want 8", n)
	}
	l.one(pt.UDP4(clientEP(31000), vipEP(), []byte("x")))
	if n := len(drainAll(l.dp)); n != 1 {
		t.Errorf("after draining, %d events, want 1", n)
	}
}

// TestSyncImportForwardsAlike is the property HA rests on: a nat flow
// made on one dataplane, carried by name to another whose IDs differ,
// is forwarded there exactly as on the first, SNAT port included, in both
// directions.
func TestSyncImportForwardsAlike(t *testing.T) {
	a := newLab(t, labConfig(ModeNAT, header.ProtoTCP), Options{SyncQueue: 64})
	// b has an extra service and backend first, so its IDs differ.
	cfg := labConfig(ModeNAT, header.ProtoTCP)
	extra := Backend{Addr: [4]byte{198, 18, 3, 9}, Port: 9, Weight: 1, MAC: beMACs[0]}
	cfg.Backends = append([]Backend{extra}, cfg.Backends...)
	cfg.Services[0].Backends = []uint32{1, 2, 3}
	cfg.Services = append([]Service{{VIP: a4(vipAddr), Proto: header.ProtoUDP, Port: 53, Mode: ModeNAT, Backends: []uint32{0}}}, cfg.Services...)
	b := newLab(t, cfg, Options{})

	cl := clientEP(40001)
	syn := pt.TCP4(cl, vipEP(), pt.FlagSYN, nil)
	outA := a.one(syn)
	ev := drainAll(a.dp)
	if len(ev) != 1 {
		t.Fatalf("events %+v", ev)
	}
	n, ok := a.dp.Names(&ev[0].Flow)
	if !ok {
		t.Fatal("Names failed")
	}
	f := ev[0].Flow
	if err := b.dp.Resolve(n, &f); err != nil {
		t.Fatal(err)
	}
	if f.Service == ev[0].Flow.Service || f.Backend == ev[0].Flow.Backend {
		t.Fatalf("IDs did not change (%d/%d): the test shows nothing", f.Service, f.Backend)
	}
	if err := b.dp.ImportFlow(conntrack.Record[conntrack.Key4]{Flow: f, State: conntrack.StateEstablished, Remaining: time.Minute}); err != nil {
		t.Fatal(err)
	}
	if got := b.dp.Active().Load(f.Backend); got != 1 {
		t.Errorf("backend %d active %d after import, want 1", f.Backend, got)
	}
	// Importing again refreshes, and does not count twice.
	if err := b.dp.ImportFlow(conntrack.Record[conntrack.Key4]{Flow: f, State: conntrack.StateEstablished, Remaining: time.Minute}); err != nil {
		t.Fatal(err)
	}
	if got := b.dp.Active().Load(f.Backend); got != 1 {
		t.Errorf("backend %d active %d after a second import, want 1", f.Backend, got)
	}
	// A late record of the flow (its SYN, resent) changes nothing.
	if ok, err := b.dp.ImportNewFlow(conntrack.Record[conntrack.Key4]{Flow: f, State: conntrack.StateSynSent, Remaining: time.Second}); ok || err != nil {
		t.Fatalf("a late record of a flow that is there was installed (%v, %v)", ok, err)
	}

	// Mid-stream, from the client: b rewrites it as a would have.
	data := pt.TCP4(cl, vipEP(), pt.FlagACK, []byte("after failover"))
	wantA := a.one(data)
	gotB := b.one(data)
	if !bytes.Equal(gotB, wantA) {
		t.Fatalf("b forwarded\n%x\nwant (as a)\n%x", gotB, wantA)
	}
	// And the backend's answer to the SNAT port goes back to the client.
	p := pt.Decode(outA)
	be := pt.Endpoint{MAC: beMACs[backendOf(t, outA)], Addr: netip.AddrPortFrom(beAddrs[backendOf(t, outA)], backendPort)}
	loc := pt.Endpoint{MAC: selfMAC, Addr: netip.AddrPortFrom(localAddr4, uint16(p.TCP().SrcPort))}
	reply := pt.TCP4(be, loc, pt.FlagACK, []byte("answer"))
	pt.Check(t, b.one(reply), pt.EthDst(gwMAC), pt.IPv4(pt.Src(vipAddr), pt.Dst(clientAddr), pt.ValidIPv4Checksum(),
		pt.TCP(pt.SrcPort(vipPort), pt.DstPort(40001), pt.ValidL4Checksum())))

	// The peer's removal ends it here.
	if !b.dp.RemoveFlow(&f) {
		t.Error("RemoveFlow of the imported flow failed")
	}
	if ok, _ := b.dp.ImportNewFlow(conntrack.Record[conntrack.Key4]{Flow: f, State: conntrack.StateEstablished, Remaining: time.Minute}); ok {
		t.Fatal("a late record brought back a flow the peer removed")
	}
	b.dp.Sweep(1 << 20)
	if got := b.dp.Active().Load(f.Backend); got != 0 {
		t.Errorf("backend %d active %d after removal, want 0", f.Backend, got)
	}
	if b.dp.RemoveFlow(&f) {
		t.Error("RemoveFlow of a removed flow succeeded")
	}
	// Once gone, a late record may bring it back (it is all b knows).
	if ok, err := b.dp.ImportNewFlow(conntrack.Record[conntrack.Key4]{Flow: f, State: conntrack.StateEstablished, Remaining: time.Minute}); !ok || err != nil {
		t.Fatalf("a late record of a flow b lacks was not installed (%v, %v)", ok, err)
	}
	if got := b.dp.Active().Load(f.Backend); got != 1 {
		t.Errorf("backend %d active %d after a late import, want 1", f.Backend, got)
	}

	// A name b does not have is refused.
	n.BackendAddr = [4]byte{198, 18, 3, 200}
	if err := b.dp.Resolve(n, &f); !errors.Is(err, ErrUnknownName) {
		t.Errorf("unknown backend: %v", err)
	}
}

// TestPollWithSyncDoesNotAllocate: queueing sync events keeps Poll's
// allocation contract.
func TestPollWithSyncDoesNotAllocate(t *testing.T) {
	l := newLab(t, labConfig(ModeNAT, header.ProtoTCP), Options{SyncQueue: 1 << 12})
	p := uint16(10000)
	syn := pt.TCP4(clientEP(p), vipEP(), pt.FlagSYN, nil)
	allocs := testing.AllocsPerRun(100, func() {
		header.TCP(syn[34:]).SetSrcPort(p)
		p++
		l.q.Inject(syn)
		l.w.Poll()
		l.q.DiscardTX()
		l.dp.DrainSync(func(*SyncEvent) {})
	})
	if allocs != 0 {
		t.Errorf("Poll with sync allocates %.1f times", allocs)
	}
	if s := l.dp.SyncStats(); s.Pushed < 100 {
		t.Errorf("only %d events: the test shows nothing", s.Pushed)
	}
}

// TestUnsyncedFlowsLandAlike: a dsr/ipip flow the backup never heard of
// (its sync was lost) is picked up mid-stream after failover; Maglev built
// from the same configuration sends it to the backend the master chose,
// even when the two appliances' internal IDs differ. The test measures the
// fraction over 5000 flows: it is 1.0 (every flow), and a change of weights
// on one side would lower it by Maglev's churn.
func TestUnsyncedFlowsLandAlike(t *testing.T) {
	for _, mode := range []Mode{ModeDSR, ModeIPIP} {
		a := newLab(t, labConfig(mode, header.ProtoTCP), Options{MaxFlows: 1 << 14})
		cfg := labConfig(mode, header.ProtoTCP)
		// b lists the backends in another order (other IDs).
		cfg.Backends[0], cfg.Backends[2] = cfg.Backends[2], cfg.Backends[0]
		b := newLab(t, cfg, Options{MaxFlows: 1 << 14})
		const n = 5000
		same := 0
		for i := range n {
			cl := pt.Endpoint{MAC: gwMAC, Addr: netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 19, byte(i >> 8), byte(i)}), uint16(1024+i))}
			syn := pt.TCP4(cl, vipEP(), pt.FlagSYN, nil)
			mid := pt.TCP4(cl, vipEP(), pt.FlagACK, []byte("mid-stream"))
			if backendOf(t, a.one(syn)) == backendOf(t, b.one(mid)) {
				same++
			}
		}
		frac := float64(same) / n
		t.Logf("%v: %d of %d unsynced flows (%.4f) reach the same backend after failover", mode, same, n, frac)
		if frac != 1 {
			t.Errorf("%v: only %.4f of unsynced flows land alike", mode, frac)
		}
	}
}

// TestServiceLocals: a service restricted to some local addresses (an
// active/active HA pair's per-group SNAT addresses) takes its source
// addresses from those only.
func TestServiceLocals(t *testing.T) {
	cfg := labConfig(ModeNAT, header.ProtoTCP)
	second := netip.MustParseAddr("198.18.2.2")
	cfg.LocalAddrs = append(cfg.LocalAddrs, a4(second))
	cfg.Services[0].Locals = []uint16{1}
	l := newLab(t, cfg, Options{})
	for i := range 20 {
		out := l.one(pt.TCP4(clientEP(uint16(41000+i)), vipEP(), pt.FlagSYN, nil))
		pt.Check(t, out, pt.IPv4(pt.Src(second)))
	}
	bad := labConfig(ModeNAT, header.ProtoTCP)
	bad.Services[0].Locals = []uint16{3}
	if err := bad.Validate(); err == nil {
		t.Error("a local address index out of range was accepted")
	}
}

// TestSNATPortClash: after a failover the table holds the peer's flows,
// whose SNAT ports came from the same range. A new flow whose first port
// is taken toward its backend tries the next, and keeps the taken ports
// out of use; only when snatTries ports in a row are taken is the SYN
// dropped.
func TestSNATPortClash(t *testing.T) {
	l := newLab(t, labConfig(ModeNAT, header.ProtoTCP), Options{})
	la := (*l.dp.locals.Load())[0]
	pool := la.pools[0]
	// The ports Get hands out next, in order (Unget puts them back on
	// top, so they come out again the same way).
	next := make([]uint16, 3+snatTries)
	for i := range next {
		p, ok := pool.Get(l.clk.Now())
		if !ok {
			t.Fatal("pool empty")
		}
		next[i] = p
	}
	for i := len(next) - 1; i >= 0; i-- {
		pool.Unget(next[i])
	}
	size := pool.Len()
	peerPort := uint16(2000)
	// importHolding imports a peer flow toward every backend on port.
	importHolding := func(port uint16) {
		for b := range beAddrs {
			peerPort++
			f := conntrack.Flow[conntrack.Key4]{
				Orig:     keyOf(netip.AddrPortFrom(netip.MustParseAddr("198.19.0.9"), peerPort), header.ProtoTCP),
				Reply:    conntrack.Key4{Src: a4(beAddrs[b]), Dst: la.addr, SrcPort: backendPort, DstPort: port, Proto: header.ProtoTCP},
				HasReply: true, Local: la.idx, Backend: uint32(b),
			}
			if err := l.dp.ImportFlow(conntrack.Record[conntrack.Key4]{Flow: f, State: conntrack.StateEstablished, Remaining: time.Minute}); err != nil {
				t.Fatal(err)
			}
		}
	}
	importHolding(next[0])
	importHolding(next[1])

	out := l.one(pt.TCP4(clientEP(40001), vipEP(), pt.FlagSYN, nil))
	if got := uint16(pt.Decode(out).TCP().SrcPort); got != next[2] {
		t.Fatalf("SYN sent from port %d, want %d (the first two are the peer's)", got, next[2])
	}
	if s := l.dp.Stats(); s.PortClashes != 2 || s.Drop != 0 {
		t.Fatalf("port clashes %d, drops %v; want 2 and none", s.PortClashes, s.Drops)
	}
	if got := pool.Len(); got != size-3 {
		t.Fatalf("%d ports in after the SYN, want %d: the two taken ones stay out", got, size-3)
	}

	// Every port it tries is taken: the SYN is dropped, counted.
	for _, p := range next[3:] {
		importHolding(p)
	}
	r := l.run(pt.TCP4(clientEP(40002), vipEP(), pt.FlagSYN, nil))
	if len(r.tx) != 0 {
		t.Fatal("SYN forwarded although every port tried is taken")
	}
	s := l.dp.Stats()
	if s.Drops[DropPortInUse] != 1 || s.PortClashes != 2+snatTries {
		t.Fatalf("drops %v, clashes %d; want one DropPortInUse and %d clashes", s.Drops, s.PortClashes, 2+snatTries)
	}
}
