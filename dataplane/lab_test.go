package dataplane

import (
	"net/netip"
	"testing"
	"time"

	"github.com/culvert-lb/culvert/conntrack"
	"github.com/culvert-lb/culvert/dataplane/sched"
	"github.com/culvert-lb/culvert/internal/header"
	pt "github.com/culvert-lb/culvert/internal/packettest"
	"github.com/culvert-lb/culvert/internal/testenv"
	"github.com/culvert-lb/culvert/nic"
)

// The test topology, all in 198.18.0.0/15: a client behind a gateway, the
// appliance with one VIP and one SNAT address, three backends.
var (
	selfMAC = [6]byte{0x02, 0xc0, 0, 0, 0, 0x01}
	gwMAC   = [6]byte{0x02, 0x99, 0, 0, 0, 0x01}
	beMACs  = [3][6]byte{{0x02, 0xbe, 0, 0, 0, 1}, {0x02, 0xbe, 0, 0, 0, 2}, {0x02, 0xbe, 0, 0, 0, 3}}

	vipAddr    = netip.MustParseAddr("198.18.1.1")
	localAddr4 = netip.MustParseAddr("198.18.2.1")
	encapAddr  = netip.MustParseAddr("198.18.2.100")
	beAddrs    = [3]netip.Addr{netip.MustParseAddr("198.18.3.1"), netip.MustParseAddr("198.18.3.2"), netip.MustParseAddr("198.18.3.3")}
	clientAddr = netip.MustParseAddr("198.18.0.10")
	routerAddr = netip.MustParseAddr("198.18.0.254")

	hashKey = sched.HashKey{'c', 'u', 'l', 'v', 'e', 'r', 't', '-', 't', 'e', 's', 't', 'k', 'e', 'y', '!'}
)

const (
	vipPort     = 80
	backendPort = 8080
)

func a4(a netip.Addr) [4]byte { return a.As4() }

// labConfig returns a one-service configuration.
func labConfig(mode Mode, proto uint8) *Config {
	c := &Config{
		MAC:        selfMAC,
		Gateway:    gwMAC,
		LocalAddrs: [][4]byte{a4(localAddr4)},
		EncapSrc:   a4(encapAddr),
		HashKey:    hashKey,
		AnswerVIPs: true,
	}
	port := uint16(backendPort)
	if mode != ModeNAT {
		port = 0
	}
	for i := range beAddrs {
		c.Backends = append(c.Backends, Backend{Addr: a4(beAddrs[i]), Port: port, Weight: 1, MAC: beMACs[i]})
	}
	c.Services = []Service{{VIP: a4(vipAddr), Proto: proto, Port: vipPort, Mode: mode, Scheduler: sched.KindMaglev, Backends: []uint32{0, 1, 2}}}
	return c
}

type lab struct {
	t   testing.TB
	clk *testenv.Clock
	dp  *Dataplane
	q   *nic.Mem
	w   *Worker
}

func newLab(t testing.TB, cfg *Config, opt Options) *lab {
	t.Helper()
	clk := &testenv.Clock{}
	clk.Set(int64(time.Hour)) // far from zero, like a real monotonic clock
	if opt.Workers == 0 {
		opt.Workers = 1
	}
	if opt.MaxFlows == 0 {
		opt.MaxFlows = 1 << 12
	}
	opt.Clock = clk.Now
	dp, err := New(opt)
	if err != nil {
		t.Fatal(err)
	}
	if err := dp.Apply(cfg); err != nil {
		t.Fatal(err)
	}
	q, err := nic.NewMem(256, 2048, 256)
	if err != nil {
		t.Fatal(err)
	}
	w, err := dp.NewWorker(0, q)
	if err != nil {
		t.Fatal(err)
	}
	return &lab{t: t, clk: clk, dp: dp, q: q, w: w}
}

// result is what came out of the pipeline for the frames of one Poll.
type result struct {
	tx, passed [][]byte
	dropped    uint64
}

// run pushes frames through one Poll.
func (l *lab) run(frames ...[]byte) result {
	l.t.Helper()
	rel := l.q.Released
	for _, f := range frames {
		if !l.q.Inject(f) {
			l.t.Fatalf("inject failed")
		}
	}
	if n := l.w.Poll(); n != len(frames) {
		l.t.Fatalf("Poll handled %d frames, want %d", n, len(frames))
	}
	return result{tx: l.q.TakeTX(), passed: l.q.TakePassed(), dropped: l.q.Released - rel}
}

// one pushes one frame and requires it to be transmitted.
func (l *lab) one(frame []byte) []byte {
	l.t.Helper()
	r := l.run(frame)
	if len(r.tx) != 1 {
		l.t.Fatalf("frame not transmitted: tx=%d passed=%d dropped=%d stats=%+v", len(r.tx), len(r.passed), r.dropped, l.dp.Stats().Drops)
	}
	return r.tx[0]
}

// dropped pushes one frame and requires it to be dropped for why.
func (l *lab) dropped(frame []byte, why DropReason) {
	l.t.Helper()
	before := l.dp.Stats().Drops[why]
	r := l.run(frame)
	if r.dropped != 1 || len(r.tx) != 0 || len(r.passed) != 0 {
		l.t.Fatalf("want drop %v: tx=%d passed=%d dropped=%d", why, len(r.tx), len(r.passed), r.dropped)
	}
	if got := l.dp.Stats().Drops[why] - before; got != 1 {
		l.t.Fatalf("drop counter %v moved by %d; drops: %v", why, got, l.dp.Stats().Drops)
	}
}

// passed pushes one frame and requires it to be passed for why.
func (l *lab) passed(frame []byte, why PassReason) {
	l.t.Helper()
	before := l.dp.Stats().Passes[why]
	r := l.run(frame)
	if len(r.passed) != 1 {
		l.t.Fatalf("want pass %v: tx=%d passed=%d dropped=%d drops=%v", why, len(r.tx), len(r.passed), r.dropped, l.dp.Stats().Drops)
	}
	if got := l.dp.Stats().Passes[why] - before; got != 1 {
		l.t.Fatalf("pass counter %v moved by %d", why, got)
	}
}

// state returns the connection-table state of the flow with original key k.
func (l *lab) state(k conntrack.Key4) conntrack.State {
	l.t.Helper()
	ref := l.dp.Table().Lookup(&k)
	if ref.E == nil {
		return conntrack.State(0)
	}
	return ref.E.State()
}

func clientEP(port uint16) pt.Endpoint {
	return pt.Endpoint{MAC: gwMAC, Addr: netip.AddrPortFrom(clientAddr, port)}
}

func vipEP() pt.Endpoint {
	return pt.Endpoint{MAC: selfMAC, Addr: netip.AddrPortFrom(vipAddr, vipPort)}
}

func keyOf(src netip.AddrPort, proto uint8) conntrack.Key4 {
	return conntrack.Key4{Src: a4(src.Addr()), Dst: a4(vipAddr), SrcPort: src.Port(), DstPort: vipPort, Proto: proto}
}

// backendOf returns the index of the backend whose MAC a frame is sent to.
func backendOf(t testing.TB, frame []byte) int {
	t.Helper()
	dst := header.Ethernet(frame).Dst()
	for i, m := range beMACs {
		if dst == m {
			return i
		}
	}
	t.Fatalf("frame sent to %x, not a backend", dst)
	return -1
}
