package peer

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/culvert-lb/culvert/internal/packettest"
	"github.com/culvert-lb/culvert/nic"
)

var (
	rfRouterMAC = [6]byte{0x02, 0, 0, 0, 0, 0x01}
	rfClientArm = [6]byte{0x02, 0, 0, 0, 0, 0x02} // the appliance's client-side MAC
	rfServerArm = [6]byte{0x02, 0, 0, 0, 0, 0x22} // its server-side MAC
	rfBackend   = [6]byte{0x02, 0, 0, 0, 0, 0x11}
)

// rfFrame is a 60-byte UDP frame from the router to the client side.
func rfFrame(sport uint16) []byte {
	return packettest.UDP4(
		packettest.Endpoint{MAC: rfRouterMAC, Addr: netip.AddrPortFrom(netip.MustParseAddr("198.19.0.2"), sport)},
		packettest.Endpoint{MAC: rfClientArm, Addr: netip.AddrPortFrom(netip.MustParseAddr("198.18.1.1"), 7)},
		nil, packettest.WithPayloadLen(18))
}

func newMem(t testing.TB) *nic.Mem {
	t.Helper()
	m, err := nic.NewMem(256, 2048, 256)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// oneArmed is a one-armed loop over a memory queue.
func oneArmed(t testing.TB) (*reflectLoop, *nic.Mem) {
	m := newMem(t)
	return &reflectLoop{arms: []arm{newArm(m, rfClientArm, rfBackend)}, c: new(loopCounters)}, m
}

// twoArmed is a two-armed loop over two memory queues: client side, then
// server side.
func twoArmed(t testing.TB) (*reflectLoop, *nic.Mem, *nic.Mem) {
	c, s := newMem(t), newMem(t)
	return &reflectLoop{arms: []arm{newArm(c, rfClientArm, rfRouterMAC), newArm(s, rfServerArm, rfBackend)}, c: new(loopCounters)}, c, s
}

func stats(r *reflectLoop) ReflectorStats {
	var s ReflectorStats
	sumLoops(&s, []*loopCounters{r.c})
	return s
}

// checkOut checks that out are the in frames, in order, with the MACs
// rewritten and nothing else changed.
func checkOut(t *testing.T, out, in [][]byte, src, dst [6]byte) {
	t.Helper()
	if len(out) != len(in) {
		t.Fatalf("%d frames out, want %d", len(out), len(in))
	}
	for i, f := range out {
		packettest.Check(t, f, packettest.EthSrc(src), packettest.EthDst(dst))
		if !slices.Equal(f[12:], in[i][12:]) {
			t.Errorf("frame %d: bytes after the MACs changed:\n got %x\nwant %x", i, f[12:], in[i][12:])
		}
	}
}

// TestReflectOneArmed: every frame goes back out of its queue toward the
// next hop; frames too short for Ethernet, and what the TX ring refuses,
// are released and counted; no chunk is lost.
func TestReflectOneArmed(t *testing.T) {
	good := rfFrame(10000)
	for _, tc := range []struct {
		name    string
		in      [][]byte
		txLimit int
		want    ReflectorStats
	}{
		{"batch", slices.Repeat([][]byte{good}, 5), 0, ReflectorStats{Received: 5, Forwarded: 5}},
		{"full batch", slices.Repeat([][]byte{good}, BatchSize), 0, ReflectorStats{Received: BatchSize, Forwarded: BatchSize}},
		{"short frame", [][]byte{good, good[:13], good}, 0, ReflectorStats{Received: 3, Forwarded: 2, Short: 1}},
		{"tx ring full", slices.Repeat([][]byte{good}, 5), 2, ReflectorStats{Received: 5, Forwarded: 2, TXFull: 3}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, m := oneArmed(t)
			m.SetTXLimit(tc.txLimit)
			free := m.Free()
			for _, f := range tc.in {
				if !m.Inject(f) {
					t.Fatal("inject failed")
				}
			}
			if n := r.poll(); n != len(tc.in) {
				t.Fatalf("poll received %d, want %d", n, len(tc.in))
			}
			if n := r.poll(); n != 0 {
				t.Fatalf("second poll received %d", n)
			}
			var want [][]byte
			for _, f := range tc.in {
				if len(f) >= 14 {
					want = append(want, f)
				}
			}
			checkOut(t, m.TakeTX(), want[:tc.want.Forwarded], rfClientArm, rfBackend)
			if got := stats(r); got != tc.want {
				t.Errorf("counters %+v, want %+v", got, tc.want)
			}
			if m.Free() != free {
				t.Errorf("%d chunks free after, %d before", m.Free(), free)
			}
		})
	}
}

// TestReflectTwoArmed: a frame received on one interface leaves by the
// other, copied into that queue's UMEM with its MACs, the original goes
// back to its own queue; short frames, frames no chunk was allocated for,
// and what the TX ring refuses are released and counted; no chunk is lost
// on either side.
func TestReflectTwoArmed(t *testing.T) {
	good := rfFrame(10000)
	for _, tc := range []struct {
		name              string
		in                [][]byte
		fromServer        bool // inject on the server side instead
		allocLimit, txLim int
		want              ReflectorStats
	}{
		{"client to server", slices.Repeat([][]byte{good}, 5), false, -1, 0, ReflectorStats{Received: 5, Forwarded: 5}},
		{"server to client", slices.Repeat([][]byte{good}, 5), true, -1, 0, ReflectorStats{Received: 5, Forwarded: 5}},
		{"full batch", slices.Repeat([][]byte{good}, BatchSize), false, -1, 0, ReflectorStats{Received: BatchSize, Forwarded: BatchSize}},
		{"short frame", [][]byte{good, good[:10], good}, false, -1, 0, ReflectorStats{Received: 3, Forwarded: 2, Short: 1}},
		{"fewer chunks than frames", slices.Repeat([][]byte{good}, 5), false, 3, 0, ReflectorStats{Received: 5, Forwarded: 3, NoChunk: 2}},
		{"no chunk at all", slices.Repeat([][]byte{good}, 5), false, 0, 0, ReflectorStats{Received: 5, NoChunk: 5}},
		{"tx ring full", slices.Repeat([][]byte{good}, 5), false, -1, 2, ReflectorStats{Received: 5, Forwarded: 2, TXFull: 3}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, cm, sm := twoArmed(t)
			in, out, src, dst := cm, sm, rfServerArm, rfBackend
			if tc.fromServer {
				in, out, src, dst = sm, cm, rfClientArm, rfRouterMAC
			}
			out.SetAllocLimit(tc.allocLimit)
			out.SetTXLimit(tc.txLim)
			freeIn, freeOut := in.Free(), out.Free()
			for _, f := range tc.in {
				if !in.Inject(f) {
					t.Fatal("inject failed")
				}
			}
			if n := r.poll(); n != len(tc.in) {
				t.Fatalf("poll received %d, want %d", n, len(tc.in))
			}
			var want [][]byte
			for _, f := range tc.in {
				if len(f) >= 14 {
					want = append(want, f)
				}
			}
			checkOut(t, out.TakeTX(), want[:tc.want.Forwarded], src, dst)
			if tx := in.TakeTX(); len(tx) != 0 {
				t.Errorf("%d frames sent back out of the interface they came in on", len(tx))
			}
			if got := stats(r); got != tc.want {
				t.Errorf("counters %+v, want %+v", got, tc.want)
			}
			if in.Free() != freeIn || out.Free() != freeOut {
				t.Errorf("chunks free: in %d (was %d), out %d (was %d)", in.Free(), freeIn, out.Free(), freeOut)
			}
		})
	}
}

// TestReflectNoAllocs: a batch allocates nothing, one- or two-armed.
func TestReflectNoAllocs(t *testing.T) {
	f := rfFrame(10000)
	r1, m := oneArmed(t)
	if a := testing.AllocsPerRun(100, func() {
		for range BatchSize {
			m.Inject(f)
		}
		r1.poll()
		m.DiscardTX()
	}); a != 0 {
		t.Errorf("one-armed: %v allocations per batch, want 0", a)
	}
	r2, cm, sm := twoArmed(t)
	if a := testing.AllocsPerRun(100, func() {
		for range BatchSize {
			cm.Inject(f)
		}
		r2.poll()
		sm.DiscardTX()
	}); a != 0 {
		t.Errorf("two-armed: %v allocations per batch, want 0", a)
	}
}

// BenchmarkReflect is the user-space cost per frame of a Reflector loop on
// memory queues; the figure includes Inject's copy of each frame, which
// the kernel makes on a real queue.
func BenchmarkReflect(b *testing.B) {
	f := rfFrame(10000)
	b.Run("one-armed", func(b *testing.B) {
		r, m := oneArmed(b)
		b.ReportAllocs()
		for b.Loop() {
			for range BatchSize {
				m.Inject(f)
			}
			r.poll()
			m.DiscardTX()
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*BatchSize), "ns/frame")
	})
	b.Run("two-armed", func(b *testing.B) {
		r, cm, sm := twoArmed(b)
		b.ReportAllocs()
		for b.Loop() {
			for range BatchSize {
				cm.Inject(f)
			}
			r.poll()
			sm.DiscardTX()
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*BatchSize), "ns/frame")
	})
}
