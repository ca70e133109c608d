package dataplane

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/culvert-lb/culvert/internal/header"
	pt "github.com/culvert-lb/culvert/internal/packettest"
	"github.com/culvert-lb/culvert/nat"
	"github.com/culvert-lb/culvert/nic"
)

// Two-armed operation: the worker has a queue on the client-side link and
// one on the server-side link; frames leave by the link their verdict
// names, from that link's MAC.

// srvMAC is the appliance's server-side interface; selfMAC is its client
// side.
var srvMAC = [6]byte{0x02, 0xc0, 0, 0, 0, 0x02}

// twoArmConfig is labConfig on two links: the client side is link client
// (MAC selfMAC), the backends are on the other (MAC srvMAC).
func twoArmConfig(mode Mode, proto uint8, client uint8) *Config {
	c := labConfig(mode, proto)
	server := 1 - client
	c.MAC = header.MAC{}
	c.Links = make([]Link, 2)
	c.Links[client] = Link{MAC: selfMAC}
	c.Links[server] = Link{MAC: srvMAC}
	c.ClientLink = client
	for i := range c.Backends {
		c.Backends[i].Link = server
	}
	return c
}

// countQueue is a Mem queue that counts Transmit calls.
type countQueue struct {
	*nic.Mem
	transmits int
}

func (q *countQueue) Transmit(d []nic.Desc) int {
	q.transmits++
	return q.Mem.Transmit(d)
}

type twoLab struct {
	t              testing.TB
	dp             *Dataplane
	q              [2]*countQueue
	w              *Worker
	client, server int
}

const twoLabChunks = 256

func newTwoLab(t testing.TB, cfg *Config) *twoLab {
	t.Helper()
	l := &twoLab{t: t, client: int(cfg.ClientLink), server: 1 - int(cfg.ClientLink)}
	var err error
	if l.dp, err = New(Options{Workers: 1, Links: 2, MaxFlows: 1 << 12}); err != nil {
		t.Fatal(err)
	}
	if err := l.dp.Apply(cfg); err != nil {
		t.Fatal(err)
	}
	for i := range l.q {
		m, err := nic.NewMem(twoLabChunks, 2048, 256)
		if err != nil {
			t.Fatal(err)
		}
		l.q[i] = &countQueue{Mem: m}
	}
	if l.w, err = l.dp.NewWorker(0, l.q[0], l.q[1]); err != nil {
		t.Fatal(err)
	}
	return l
}

// run injects in[i] on link i, makes one Poll and returns what left by
// each link.
func (l *twoLab) run(in [2][][]byte) (out [2][][]byte) {
	l.t.Helper()
	n := 0
	for i, frames := range in {
		for _, f := range frames {
			if !l.q[i].Inject(f) {
				l.t.Fatalf("inject on link %d failed", i)
			}
			n++
		}
	}
	if got := l.w.Poll(); got != n {
		l.t.Fatalf("Poll handled %d frames, want %d", got, n)
	}
	for i := range l.q {
		out[i] = l.q[i].TakeTX()
	}
	return out
}

// one injects frame on link on and requires it to leave by link by, alone.
func (l *twoLab) one(on, by int, frame []byte) []byte {
	l.t.Helper()
	var in [2][][]byte
	in[on] = [][]byte{frame}
	out := l.run(in)
	if len(out[by]) != 1 || len(out[1-by]) != 0 {
		l.t.Fatalf("sent %d frames by link %d and %d by link %d, want 1 by link %d; drops %v",
			len(out[0]), 0, len(out[1]), 1, by, l.dp.Stats().Drops)
	}
	return out[by][0]
}

// checkNoLeak requires every chunk of both queues back on its free stack.
func (l *twoLab) checkNoLeak() {
	l.t.Helper()
	for i, q := range l.q {
		if q.Free() != twoLabChunks {
			l.t.Fatalf("link %d: %d of %d chunks free: a frame leaked", i, q.Free(), twoLabChunks)
		}
	}
	s := l.dp.Stats()
	if s.RX != s.TX+s.Pass+s.Drop {
		l.t.Fatalf("rx %d != tx %d + pass %d + drop %d", s.RX, s.TX, s.Pass, s.Drop)
	}
}

// TestTwoArmedForwarding: each verdict leaves by the link it names, with
// that link's MAC as source, in every mode and with the client side on
// either link.
func TestTwoArmedForwarding(t *testing.T) {
	for _, client := range []uint8{0, 1} {
		t.Run(fmt.Sprintf("client-link=%d", client), func(t *testing.T) {
			t.Run("nat", func(t *testing.T) {
				l := newTwoLab(t, twoArmConfig(ModeNAT, header.ProtoTCP, client))
				cl := clientEP(40000)
				out := l.one(l.client, l.server, pt.TCP4(cl, vipEP(), pt.FlagSYN, nil, pt.WithSeq(100), pt.WithTTL(64)))
				b := backendOf(t, out)
				sport := uint16(pt.Decode(out).TCP().SrcPort)
				pt.Check(t, out, pt.EthSrc(srvMAC), pt.EthDst(beMACs[b]),
					pt.IPv4(pt.Src(localAddr4), pt.Dst(beAddrs[b]), pt.TTL(63), pt.ValidIPv4Checksum(), pt.TotalLenMatches()),
					pt.TCP(pt.DstPort(backendPort), pt.TCPFlagsAre(pt.FlagSYN), pt.Seq(100), pt.ValidL4Checksum()))
				be := pt.Endpoint{MAC: beMACs[b], Addr: netip.AddrPortFrom(beAddrs[b], backendPort)}
				loc := pt.Endpoint{MAC: srvMAC, Addr: netip.AddrPortFrom(localAddr4, sport)}
				out = l.one(l.server, l.client, pt.TCP4(be, loc, pt.FlagSYN|pt.FlagACK, []byte("hi"), pt.WithSeq(900), pt.WithAck(101)))
				pt.Check(t, out, pt.EthSrc(selfMAC), pt.EthDst(gwMAC),
					pt.IPv4(pt.Src(vipAddr), pt.Dst(clientAddr), pt.ValidIPv4Checksum(), pt.TotalLenMatches()),
					pt.TCP(pt.SrcPort(vipPort), pt.DstPort(40000), pt.Seq(900), pt.Ack(101), pt.Payload([]byte("hi")), pt.ValidL4Checksum()))

				// ICMP errors follow the flow to the other side.
				router := pt.Endpoint{MAC: gwMAC, Addr: netip.AddrPortFrom(routerAddr, 0)}
				sent := pt.TCP4(vipEP(), cl, pt.FlagACK, bytes.Repeat([]byte{1}, 1400))
				out = l.one(l.client, l.server, pt.ICMP4Error(router, vipEP(), 3, 4, 1400, pt.Quote(sent, 8)))
				pt.Check(t, out, pt.EthSrc(srvMAC), pt.EthDst(beMACs[b]),
					pt.IPv4(pt.Src(localAddr4), pt.Dst(beAddrs[b]), pt.ValidIPv4Checksum(),
						pt.ICMPv4(pt.ICMPType(3), pt.ICMPCode(4), pt.ValidICMPChecksum())))
				toBE := pt.TCP4(loc, be, pt.FlagACK, []byte("hello"))
				beRouter := pt.Endpoint{MAC: beMACs[b], Addr: netip.AddrPortFrom(netip.MustParseAddr("198.18.3.254"), 0)}
				out = l.one(l.server, l.client, pt.ICMP4Error(beRouter, pt.Endpoint{MAC: srvMAC, Addr: netip.AddrPortFrom(localAddr4, 0)}, 3, 1, 0, pt.Quote(toBE, 64)))
				pt.Check(t, out, pt.EthSrc(selfMAC), pt.EthDst(gwMAC),
					pt.IPv4(pt.Src(vipAddr), pt.Dst(clientAddr), pt.ValidIPv4Checksum(),
						pt.ICMPv4(pt.ICMPType(3), pt.ICMPCode(1), pt.ValidICMPChecksum())))
				if s := l.dp.Stats(); s.CrossLink != 4 || s.TX != 4 {
					t.Fatalf("cross-link %d, tx %d; want 4 and 4", s.CrossLink, s.TX)
				}
				l.checkNoLeak()
			})
			t.Run("dsr", func(t *testing.T) {
				l := newTwoLab(t, twoArmConfig(ModeDSR, header.ProtoUDP, client))
				in := pt.UDP4(clientEP(5353), vipEP(), []byte("query"))
				out := l.one(l.client, l.server, in)
				b := backendOf(t, out)
				pt.Check(t, out, pt.EthSrc(srvMAC), pt.EthDst(beMACs[b]))
				if !bytes.Equal(out[12:], in[12:]) {
					t.Fatal("dsr changed more than the MACs")
				}
				l.checkNoLeak()
			})
			t.Run("ipip", func(t *testing.T) {
				cfg := twoArmConfig(ModeIPIP, header.ProtoTCP, client)
				cfg.Links[l2(client)].MTU = 1500 // the client side has more room: only the server side's counts
				cfg.MTU = 9000
				l := newTwoLab(t, cfg)
				cl := clientEP(44000)
				in := pt.TCP4(cl, vipEP(), pt.FlagSYN, nil, pt.WithDF(), pt.WithTTL(50))
				out := l.one(l.client, l.server, in)
				b := backendOf(t, out)
				pt.Check(t, out, pt.EthSrc(srvMAC), pt.EthDst(beMACs[b]),
					pt.IPIP(pt.Src(encapAddr), pt.Dst(beAddrs[b]), pt.TTL(64), pt.ValidIPv4Checksum(), pt.TotalLenMatches(),
						pt.Inner(pt.Src(clientAddr), pt.Dst(vipAddr), pt.TTL(50), pt.ValidIPv4Checksum(),
							pt.TCP(pt.SrcPort(44000), pt.DstPort(vipPort), pt.ValidL4Checksum()))))
				dec, ok := nat.DecapIPIP(append([]byte(nil), out...))
				if !ok || !bytes.Equal(pt.IPPacket(dec), pt.IPPacket(in)) {
					t.Fatal("decapsulated packet differs from the original")
				}
				// A full-size packet grown into the headroom is copied whole.
				fits := pt.TCP4(cl, vipEP(), pt.FlagACK, nil, pt.WithDF(), pt.WithPayloadLen(1480-40))
				if out = l.one(l.client, l.server, fits); len(out) != 14+1500 || !bytes.Equal(out[14+20:], fits[14:]) {
					t.Fatalf("encapsulated frame of %d bytes, want 1514 ending in the original packet", len(out))
				}
				// Too big for the server side: fragmentation-needed goes
				// back where the packet came from.
				big := pt.TCP4(cl, vipEP(), pt.FlagACK, nil, pt.WithDF(), pt.WithPayloadLen(1500-40))
				out = l.one(l.client, l.client, big)
				pt.Check(t, out, pt.EthSrc(selfMAC), pt.EthDst(gwMAC),
					pt.IPv4(pt.Src(vipAddr), pt.Dst(clientAddr), pt.ValidIPv4Checksum(),
						pt.ICMPv4(pt.ICMPType(3), pt.ICMPCode(4), pt.NextHopMTU(1480), pt.ValidICMPChecksum())))
				if s := l.dp.Stats(); s.CrossLink != 2 || s.FragNeeded != 1 {
					t.Fatalf("cross-link %d, frag-needed %d; want 2 and 1", s.CrossLink, s.FragNeeded)
				}
				l.checkNoLeak()
			})
			t.Run("arp and echo", func(t *testing.T) {
				l := newTwoLab(t, twoArmConfig(ModeDSR, header.ProtoTCP, client))
				for link, self := range map[int][6]byte{l.client: selfMAC, l.server: srvMAC} {
					out := l.one(link, link, pt.ARPRequest(gwMAC, clientAddr, vipAddr))
					pt.Check(t, out, pt.EthDst(gwMAC), pt.EthSrc(self),
						pt.ARP(pt.ARPOp(header.ARPReply), pt.ARPSender(self, vipAddr), pt.ARPTarget(gwMAC, clientAddr)))
					cl := pt.Endpoint{MAC: gwMAC, Addr: netip.AddrPortFrom(clientAddr, 0)}
					out = l.one(link, link, pt.ICMP4Echo(cl, pt.Endpoint{MAC: self, Addr: netip.AddrPortFrom(vipAddr, 0)}, 7, 9, []byte("there?")))
					pt.Check(t, out, pt.EthDst(gwMAC), pt.EthSrc(self),
						pt.IPv4(pt.Src(vipAddr), pt.Dst(clientAddr), pt.ValidIPv4Checksum(),
							pt.ICMPv4(pt.ICMPType(0), pt.EchoID(7), pt.ValidICMPChecksum())))
				}
				if s := l.dp.Stats(); s.CrossLink != 0 {
					t.Fatalf("answers were copied across links: %d", s.CrossLink)
				}
				l.checkNoLeak()
			})
		})
	}
}

// l2 returns the other link of two.
func l2(client uint8) uint8 { return 1 - client }

// TestTwoArmedOneTransmitPerQueue: frames from both links in one Poll,
// leaving by both, make one Transmit call per queue.
func TestTwoArmedOneTransmitPerQueue(t *testing.T) {
	l := newTwoLab(t, twoArmConfig(ModeNAT, header.ProtoUDP, 0))
	var in [2][][]byte
	for i := range 10 {
		in[0] = append(in[0], pt.UDP4(clientEP(uint16(1000+i)), vipEP(), []byte("to backend")))
	}
	out := l.run(in)
	if len(out[1]) != 10 || l.q[0].transmits != 0 || l.q[1].transmits != 1 {
		t.Fatalf("sent %d by the server side; transmits %d, %d", len(out[1]), l.q[0].transmits, l.q[1].transmits)
	}
	// Replies on the server side, new requests and an ARP request on the
	// client side, in one Poll.
	in = [2][][]byte{}
	for _, f := range out[1] {
		p := pt.Decode(f)
		be := pt.Endpoint{MAC: beMACs[backendOf(t, f)], Addr: netip.AddrPortFrom(netip.AddrFrom4([4]byte(p.IPv4().DstIP.To4())), uint16(p.UDP().DstPort))}
		loc := pt.Endpoint{MAC: srvMAC, Addr: netip.AddrPortFrom(localAddr4, uint16(p.UDP().SrcPort))}
		in[1] = append(in[1], pt.UDP4(be, loc, []byte("reply")))
	}
	for i := range 5 {
		in[0] = append(in[0], pt.UDP4(clientEP(uint16(2000+i)), vipEP(), []byte("more")))
	}
	in[0] = append(in[0], pt.ARPRequest(gwMAC, clientAddr, vipAddr))
	l.q[0].transmits, l.q[1].transmits = 0, 0
	out = l.run(in)
	if len(out[0]) != 11 || len(out[1]) != 5 {
		t.Fatalf("sent %d by the client side (want 10 replies + 1 ARP), %d by the server side (want 5)", len(out[0]), len(out[1]))
	}
	if l.q[0].transmits != 1 || l.q[1].transmits != 1 {
		t.Fatalf("transmit calls %d, %d; want one per queue", l.q[0].transmits, l.q[1].transmits)
	}
	// The ARP reply was queued in the client side's own batch, first.
	pt.Check(t, out[0][0], pt.EthSrc(selfMAC), pt.ARP(pt.ARPOp(header.ARPReply)))
	for _, f := range out[0][1:] {
		pt.Check(t, f, pt.EthSrc(selfMAC), pt.EthDst(gwMAC), pt.IPv4(pt.Src(vipAddr), pt.Dst(clientAddr)),
			pt.UDP(pt.SrcPort(vipPort), pt.Payload([]byte("reply")), pt.ValidL4Checksum()))
	}
	if s := l.dp.Stats(); s.CrossLink != 25 || s.TX != 26 {
		t.Fatalf("cross-link %d, tx %d; want 25 and 26", s.CrossLink, s.TX)
	}
	l.checkNoLeak()
}

// TestTwoArmedNoTXFrame: when the other link's queue has no chunk to
// spare, the frame is dropped (no-tx-frame) and its own chunk returned.
func TestTwoArmedNoTXFrame(t *testing.T) {
	for _, c := range []struct {
		limit, sent int
	}{{0, 0}, {1, 1}, {2, 2}, {-1, 3}} {
		t.Run(fmt.Sprintf("alloc-limit=%d", c.limit), func(t *testing.T) {
			l := newTwoLab(t, twoArmConfig(ModeDSR, header.ProtoUDP, 0))
			l.q[1].SetAllocLimit(c.limit)
			out := l.run([2][][]byte{{pt.UDP4(clientEP(1), vipEP(), nil), pt.UDP4(clientEP(2), vipEP(), nil), pt.UDP4(clientEP(3), vipEP(), nil)}})
			s := l.dp.Stats()
			if len(out[1]) != c.sent || s.TX != uint64(c.sent) || s.Drops[DropNoTXFrame] != uint64(3-c.sent) || s.Drop != uint64(3-c.sent) {
				t.Fatalf("sent %d, tx %d, no-tx-frame %d, drop %d; want %d sent", len(out[1]), s.TX, s.Drops[DropNoTXFrame], s.Drop, c.sent)
			}
			if l.q[0].Released != 3 {
				t.Fatalf("client side released %d frames, want all 3 (copied or dropped)", l.q[0].Released)
			}
			l.checkNoLeak()
		})
	}
}

// TestTwoArmedTXFull: copies a full TX ring refuses go back to the queue
// they were allocated on.
func TestTwoArmedTXFull(t *testing.T) {
	l := newTwoLab(t, twoArmConfig(ModeDSR, header.ProtoUDP, 0))
	l.q[1].SetTXLimit(1)
	out := l.run([2][][]byte{{pt.UDP4(clientEP(1), vipEP(), nil), pt.UDP4(clientEP(2), vipEP(), nil), pt.UDP4(clientEP(3), vipEP(), nil)}})
	s := l.dp.Stats()
	if len(out[1]) != 1 || s.Drops[DropTXFull] != 2 || s.TX != 1 || s.CrossLink != 3 {
		t.Fatalf("sent %d, tx-full %d, tx %d, cross-link %d", len(out[1]), s.Drops[DropTXFull], s.TX, s.CrossLink)
	}
	if s.TXBytes != uint64(len(out[1][0])) {
		t.Fatalf("tx bytes %d for one frame of %d", s.TXBytes, len(out[1][0]))
	}
	l.checkNoLeak()
}

// TestTwoArmedConfig: the links of a Config must match the dataplane's.
func TestTwoArmedConfig(t *testing.T) {
	dp, err := New(Options{Workers: 1, Links: 2})
	if err != nil {
		t.Fatal(err)
	}
	m, _ := nic.NewMem(8, 2048, 256)
	if _, err := dp.NewWorker(0, m); err == nil || !strings.Contains(err.Error(), "1 queues for 2 links") {
		t.Errorf("one queue for two links: %v", err)
	}
	if _, err := New(Options{Workers: 1, Links: MaxLinks + 1}); err == nil {
		t.Error("more than MaxLinks links accepted")
	}
	for _, c := range []struct {
		name string
		edit func(*Config)
		want string
	}{
		{"three links", func(c *Config) { c.Links = append(c.Links, Link{}) }, "3 links configured, the dataplane has 2"},
		{"backend link", func(c *Config) { c.Backends[1].Link = 2 }, "backends[1].link: 2, but there are 2 links"},
		{"client link", func(c *Config) { c.ClientLink = 5 }, "client link: 5, but there are 2 links"},
		{"mac", func(c *Config) { c.MAC = srvMAC }, "differs from links[0].mac"},
		{"mtu", func(c *Config) { c.Links[1].MTU = 100 }, "links[1].mtu: 100 is outside"},
		{"no links, backend link", func(c *Config) { c.Links = nil; c.Backends[0].Link = 3 }, "backends[0]: link 3, the dataplane has 2 links"},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := twoArmConfig(ModeDSR, header.ProtoTCP, 0)
			c.edit(cfg)
			if err := dp.Apply(cfg); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Apply: %v, want %q", err, c.want)
			}
		})
	}
	// Without Links every link has Config.MAC: the ARP reply on link 1
	// comes from it.
	cfg := labConfig(ModeDSR, header.ProtoTCP)
	cfg.Backends[0].Link = 1
	l := newTwoLab(t, cfg)
	out := l.one(1, 1, pt.ARPRequest(gwMAC, clientAddr, vipAddr))
	pt.Check(t, out, pt.EthSrc(selfMAC), pt.ARP(pt.ARPSender(selfMAC, vipAddr)))
}

// lockedQueue is a Mem queue safe to feed from the test goroutine while a
// worker runs on it, that records its Waits.
type lockedQueue struct {
	mu    sync.Mutex
	m     *nic.Mem
	waits int
}

func (q *lockedQueue) lock() func() { q.mu.Lock(); return q.mu.Unlock }

func (q *lockedQueue) UMEM() []byte              { return q.m.UMEM() }
func (q *lockedQueue) ChunkSize() int            { return q.m.ChunkSize() }
func (q *lockedQueue) Headroom() int             { return q.m.Headroom() }
func (q *lockedQueue) Receive(d []nic.Desc) int  { defer q.lock()(); return q.m.Receive(d) }
func (q *lockedQueue) Transmit(d []nic.Desc) int { defer q.lock()(); return q.m.Transmit(d) }
func (q *lockedQueue) Pass(d []nic.Desc)         { defer q.lock()(); q.m.Pass(d) }
func (q *lockedQueue) Release(d []nic.Desc)      { defer q.lock()(); q.m.Release(d) }
func (q *lockedQueue) Alloc(d []nic.Desc) int    { defer q.lock()(); return q.m.Alloc(d) }
func (q *lockedQueue) inject(f []byte) bool      { defer q.lock()(); return q.m.Inject(f) }
func (q *lockedQueue) takeTX() [][]byte          { defer q.lock()(); return q.m.TakeTX() }
func (q *lockedQueue) waited() int               { defer q.lock()(); return q.waits }
func (q *lockedQueue) Wait(d time.Duration) error {
	q.mu.Lock()
	q.waits++
	q.mu.Unlock()
	time.Sleep(d)
	return nil
}

// TestRunTwoQueues: an idle two-armed worker sleeps on each queue in turn
// (Mem queues cannot be polled together) and still handles a frame that
// arrives on either.
func TestRunTwoQueues(t *testing.T) {
	dp, err := New(Options{Workers: 1, Links: 2, MaxFlows: 1024})
	if err != nil {
		t.Fatal(err)
	}
	if err := dp.Apply(twoArmConfig(ModeDSR, header.ProtoUDP, 1)); err != nil {
		t.Fatal(err)
	}
	var qs [2]*lockedQueue
	for i := range qs {
		m, _ := nic.NewMem(64, 2048, 256)
		qs[i] = &lockedQueue{m: m}
	}
	w, err := dp.NewWorker(0, qs[0], qs[1])
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- w.Run(ctx, RunOptions{CPU: -1, SpinPolls: 4, Sleep: time.Second}) }()
	defer func() {
		cancel()
		if err := <-done; err != context.Canceled {
			t.Errorf("Run returned %v", err)
		}
	}()
	wait := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(2 * time.Second); !cond(); time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
		}
	}
	wait("the worker to sleep on both queues", func() bool { return qs[0].waited() > 0 && qs[1].waited() > 0 })
	// Client side is link 1: the frame crosses to link 0.
	t0 := time.Now()
	qs[1].inject(pt.UDP4(clientEP(1), vipEP(), []byte("x")))
	var tx [][]byte
	wait("the frame on link 0", func() bool { tx = append(tx, qs[0].takeTX()...); return len(tx) > 0 })
	took := time.Since(t0)
	pt.Check(t, tx[0], pt.EthSrc(srvMAC))
	t.Logf("frame handled %v after it arrived, waits %d and %d", took, qs[0].waited(), qs[1].waited())
	if took > 500*time.Millisecond {
		t.Errorf("the frame waited %v: the worker slept on the other queue for its whole Sleep", took)
	}
	if s := w.Stats(); s.TX != 1 || s.CrossLink != 1 {
		t.Fatalf("tx %d cross-link %d", s.TX, s.CrossLink)
	}
}
