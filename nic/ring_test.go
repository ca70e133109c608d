//go:build linux

package nic

import (
	"encoding/binary"
	"fmt"
	"strings"
	"sync"
	"testing"

	"golang.org/x/sys/unix"
)

// The rings and the port without privileges: fakeXSK maps anonymous
// memory laid out as the kernel lays out a socket's rings and plays the
// kernel's side of each ring through the same shared words, so the port
// code under test is exactly the code that runs on a real socket.

// fakeRingOffsets mimics the kernel's struct xdp_rxtx_ring / xdp_umem_ring:
// producer and consumer on their own cache lines, then flags, then entries.
var fakeRingOffsets = xskRingOffsets{producer: 0, consumer: 64, flags: 128, desc: 192}

func anonMap(t testing.TB, size int) []byte {
	t.Helper()
	size = (size + 4095) &^ 4095
	m, err := unix.Mmap(-1, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		t.Fatalf("mmap: %v", err)
	}
	t.Cleanup(func() { unix.Munmap(m) })
	return m
}

type fakeXSK struct {
	t    testing.TB
	cfg  XDPConfig
	umem []byte
	port *xskPort
	c    xskCounters

	budget      int       // frames the kernel sends per kick; 0: all
	fail        []TXError // failures to return from the next kicks, sending nothing
	deferComp   bool      // hold sent frames in inflight until completeAll
	inflight    []uint64  // addresses sent but not yet on the completion ring
	sent        [][]byte  // copies of the frames the kernel sent
	nsent       int       // frames the kernel sent
	discard     bool      // do not keep copies in sent (allocation tests)
	delivered   int
	kicks       int
	wakes       int
	onDeliverTo func(chunk uint64)        // checks a chunk is fit to receive into
	onSend      func(d Desc, data []byte) // checks a frame as the kernel sends it
	onComplete  func(addr uint64)         // sees a completion as the kernel posts it
}

func newFakeXSK(t testing.TB, cfg XDPConfig) *fakeXSK {
	t.Helper()
	cfg.Iface = "fake0"
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	f := &fakeXSK{t: t, cfg: cfg, umem: anonMap(t, cfg.Frames*cfg.FrameSize)[:cfg.Frames*cfg.FrameSize]}
	var maps [numRings][]byte
	var offs [numRings]xskRingOffsets
	for i, n := range [numRings]int{ringFill: cfg.FillSize * 8, ringComp: cfg.CompSize * 8, ringRX: cfg.RxSize * 16, ringTX: cfg.TxSize * 16} {
		maps[i] = anonMap(t, int(fakeRingOffsets.desc)+n)
		offs[i] = fakeRingOffsets
	}
	// Copy mode: the kernel sets need-wakeup on the TX ring at bind and
	// never clears it.
	binary.NativeEndian.PutUint32(maps[ringTX][fakeRingOffsets.flags:], xskRingNeedWakeup)
	var err error
	f.port, err = newXSKPort(cfg, f.umem, maps, offs, false, f, &f.c)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// deliver receives frame the way the kernel does in copy mode: take a chunk
// from the fill ring, copy the frame behind the headroom, post it on the RX
// ring. It reports false when there is no buffer or no room.
func (f *fakeXSK) deliver(frame []byte) bool {
	fill, rx := &f.port.fill, &f.port.rx
	fc, fp := fill.consumer.Load(), fill.producer.Load()
	rc, rp := rx.consumer.Load(), rx.producer.Load()
	if fc == fp || rp-rc == rx.size() {
		return false
	}
	chunk := fill.entries[fc&fill.mask] &^ (uint64(f.cfg.FrameSize) - 1)
	fill.consumer.Store(fc + 1)
	if f.onDeliverTo != nil {
		f.onDeliverTo(chunk)
	}
	addr := chunk + uint64(f.cfg.frameOffset())
	copy(f.umem[addr:], frame)
	rx.entries[rp&rx.mask] = Desc{Addr: addr, Len: uint32(len(frame))}
	rx.producer.Store(rp + 1)
	f.delivered++
	return true
}

// kickTX implements xskKicker as copy mode's sendto does: send up to the
// budget, then EAGAIN if more remain.
func (f *fakeXSK) kickTX() (TXError, bool) {
	f.kicks++
	if len(f.fail) > 0 {
		e := f.fail[0]
		f.fail = f.fail[1:]
		return e, true
	}
	tx, comp := &f.port.tx, &f.port.comp
	c, p := tx.consumer.Load(), tx.producer.Load()
	sent := 0
	for c != p {
		if f.budget > 0 && sent == f.budget {
			tx.consumer.Store(c)
			return TXErrAgain, true
		}
		cc, cp := comp.consumer.Load(), comp.producer.Load()
		if cp-cc+uint32(len(f.inflight)) >= comp.size() {
			tx.consumer.Store(c)
			return TXErrAgain, true
		}
		d := tx.entries[c&tx.mask]
		off := d.Addr & (uint64(f.cfg.FrameSize) - 1)
		if d.Len == 0 || off+uint64(d.Len) > uint64(f.cfg.FrameSize) || d.Addr >= uint64(len(f.umem)) || d.Options != 0 {
			f.t.Errorf("kernel: invalid tx descriptor %+v", d)
		}
		if f.onSend != nil {
			f.onSend(d, f.umem[d.Addr:d.Addr+uint64(d.Len)])
		}
		if !f.discard {
			f.sent = append(f.sent, append([]byte(nil), f.umem[d.Addr:d.Addr+uint64(d.Len)]...))
		}
		f.nsent++
		if f.deferComp {
			f.inflight = append(f.inflight, d.Addr)
		} else {
			f.postCompletion(d.Addr)
		}
		c++
		sent++
	}
	tx.consumer.Store(c)
	return 0, false
}

// completeAll posts deferred completions.
func (f *fakeXSK) completeAll() {
	for _, a := range f.inflight {
		f.postCompletion(a)
	}
	f.inflight = f.inflight[:0]
}

func (f *fakeXSK) postCompletion(addr uint64) {
	if f.onComplete != nil {
		f.onComplete(addr)
	}
	comp := &f.port.comp
	p := comp.producer.Load()
	comp.entries[p&comp.mask] = addr
	comp.producer.Store(p + 1)
}

func (f *fakeXSK) wakeRX() { f.wakes++ }

// check verifies the port's bookkeeping against the rings.
func (f *fakeXSK) check() {
	f.t.Helper()
	p := f.port
	own := p.owners()
	if got := own[frameFree]; got != len(p.free) {
		f.t.Fatalf("%d chunks free but %d on the free stack", got, len(p.free))
	}
	seen := make(map[uint32]bool)
	for _, i := range p.free {
		if seen[i] || p.state[i] != frameFree {
			f.t.Fatalf("chunk %d on the free stack twice or while %v", i, p.state[i])
		}
		seen[i] = true
	}
	if uint32(own[frameTX]) != p.inTX {
		f.t.Fatalf("%d chunks in tx, inTX %d", own[frameTX], p.inTX)
	}
	// Chunks on the fill ring the kernel has not taken are in state fill.
	fc, fp := p.fill.consumer.Load(), p.fill.producer.Load()
	for c := fc; c != fp; c++ {
		i := p.fill.entries[c&p.fill.mask] >> p.shift
		if p.state[i] != frameFill {
			f.t.Fatalf("chunk %d on the fill ring while %v", i, p.state[i])
		}
	}
}

func TestXSKRingWraparound(t *testing.T) {
	for _, start := range []uint32{0, 1<<32 - 5, 1<<32 - 64} {
		for _, batch := range []uint32{1, 3, 8} {
			t.Run(fmt.Sprintf("start=%#x/batch=%d", start, batch), func(t *testing.T) {
				mem := anonMap(t, 4096)
				var prod xskProd[uint64]
				var cons xskCons[uint64]
				if err := bindRing(&prod.xskRing, mem, fakeRingOffsets, 8); err != nil {
					t.Fatal(err)
				}
				if err := bindRing(&cons.xskRing, mem, fakeRingOffsets, 8); err != nil {
					t.Fatal(err)
				}
				prod.producer.Store(start)
				prod.consumer.Store(start)
				prod.prod, prod.cons, cons.prod, cons.cons = start, start, start, start
				next, want := uint64(0), uint64(0)
				for want < 1000 {
					n := prod.reserve(batch)
					if n > 8-(prod.prod-cons.cons) {
						t.Fatalf("reserve(%d) = %d with %d in flight", batch, n, prod.prod-cons.cons)
					}
					for i := uint32(0); i < n; i++ {
						prod.set(i, next)
						next++
					}
					prod.submit(n)
					m := cons.peek(batch + 1)
					for i := uint32(0); i < m; i++ {
						if v := cons.get(i); v != want {
							t.Fatalf("got %d, want %d", v, want)
						}
						want++
					}
					cons.release(m)
					if n == 0 && m == 0 {
						t.Fatal("ring stuck")
					}
				}
			})
		}
	}
}

func TestBindRingRejects(t *testing.T) {
	mem := anonMap(t, 4096)
	var r xskRing[Desc]
	for _, c := range []struct {
		name string
		mem  []byte
		off  xskRingOffsets
		size uint32
	}{
		{"not power of two", mem, fakeRingOffsets, 6},
		{"too big for mapping", mem, fakeRingOffsets, 512},
		{"misaligned word", mem, xskRingOffsets{producer: 2, consumer: 64, flags: 128, desc: 192}, 8},
		{"misaligned entries", mem, xskRingOffsets{producer: 0, consumer: 64, flags: 128, desc: 196}, 8},
		{"flags past the end", mem[:256], xskRingOffsets{producer: 0, consumer: 64, flags: 300, desc: 128}, 8},
	} {
		t.Run(c.name, func(t *testing.T) {
			if err := bindRing(&r, c.mem, c.off, c.size); err == nil {
				t.Error("accepted")
			}
		})
	}
}

// TestXSKRingConcurrent moves entries between two goroutines through one
// ring, as user space and the kernel do; under -race it checks that the
// atomic positions order the plain entry accesses.
func TestXSKRingConcurrent(t *testing.T) {
	mem := anonMap(t, 4096)
	var prod xskProd[Desc]
	var cons xskCons[Desc]
	if err := bindRing(&prod.xskRing, mem, fakeRingOffsets, 16); err != nil {
		t.Fatal(err)
	}
	bindRing(&cons.xskRing, mem, fakeRingOffsets, 16)
	const total = 20000
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := uint64(0); i < total; {
			n := prod.reserve(5)
			for j := uint32(0); j < n; j++ {
				prod.set(j, Desc{Addr: i, Len: uint32(i)})
				i++
			}
			prod.submit(n)
		}
	}()
	for want := uint64(0); want < total; {
		n := cons.peek(7)
		for j := uint32(0); j < n; j++ {
			if d := cons.get(j); d.Addr != want || d.Len != uint32(want) {
				t.Fatalf("entry %d = %+v", want, d)
			}
			want++
		}
		cons.release(n)
	}
	wg.Wait()
}

func TestXSKPortStartsFilled(t *testing.T) {
	for _, c := range []struct {
		frames, fill int
		wantFill     int
	}{{4096, 2048, 2048}, {64, 2048, 64}, {256, 64, 64}} {
		t.Run(fmt.Sprintf("frames=%d/fill=%d", c.frames, c.fill), func(t *testing.T) {
			f := newFakeXSK(t, XDPConfig{Frames: c.frames, FillSize: c.fill})
			own := f.port.owners()
			if own[frameFill] != c.wantFill || own[frameFree] != c.frames-c.wantFill {
				t.Fatalf("owners %v, want %d on the fill ring", own, c.wantFill)
			}
			if got := f.port.fill.producer.Load(); got != uint32(c.wantFill) {
				t.Fatalf("fill producer %d", got)
			}
			f.check()
		})
	}
}

func TestXSKPortReflect(t *testing.T) {
	f := newFakeXSK(t, XDPConfig{Frames: 256, FillSize: 128})
	for i := range 100 {
		if !f.deliver(fmt.Appendf(nil, "frame %03d", i)) {
			t.Fatalf("deliver %d failed", i)
		}
	}
	d := make([]Desc, 64)
	got := 0
	for got < 100 {
		n := f.port.Receive(d)
		if n == 0 {
			t.Fatalf("received %d of 100", got)
		}
		for i, x := range d[:n] {
			if off := x.Addr % uint64(f.cfg.FrameSize); off != uint64(f.port.headroom) {
				t.Fatalf("frame at offset %d, want headroom %d", off, f.port.headroom)
			}
			frame := f.umem[x.Addr : x.Addr+uint64(x.Len)]
			if want := fmt.Sprintf("frame %03d", got+i); string(frame) != want {
				t.Fatalf("frame %q, want %q", frame, want)
			}
			frame[0] = 'F'
		}
		if tx := f.port.Transmit(d[:n]); tx != n {
			t.Fatalf("Transmit took %d of %d", tx, n)
		}
		got += n
		f.check()
	}
	if len(f.sent) != 100 || string(f.sent[99]) != "Frame 099" {
		t.Fatalf("sent %d frames, last %q", len(f.sent), f.sent[len(f.sent)-1])
	}
	f.port.Receive(d[:0]) // reaps completions
	s := f.c.snapshot()
	if s.Received != 100 || s.Transmitted != 100 || s.Completed != 100 || s.TXKicks != 2 {
		t.Fatalf("stats %+v", s)
	}
	if own := f.port.owners(); own[frameHeld] != 0 || own[frameTX] != 0 {
		t.Fatalf("owners after reflecting everything: %v", own)
	}
	f.check()
}

// TestXSKPortHeadroomGrowth sends frames that grew at the front into the
// headroom, as IPIP encapsulation does; their chunks must come back.
func TestXSKPortHeadroomGrowth(t *testing.T) {
	f := newFakeXSK(t, XDPConfig{Frames: 64, FillSize: 64, Headroom: 300})
	if f.port.headroom != 300 {
		t.Fatalf("headroom %d, want 300", f.port.headroom)
	}
	f.deliver([]byte("inner"))
	d := make([]Desc, 1)
	if f.port.Receive(d) != 1 {
		t.Fatal("nothing received")
	}
	d[0].Addr -= 300 // to the very start of the chunk
	d[0].Len += 300
	copy(f.umem[d[0].Addr:], "outer")
	f.port.Transmit(d)
	if len(f.sent) != 1 || len(f.sent[0]) != 305 || string(f.sent[0][:5]) != "outer" || string(f.sent[0][300:]) != "inner" {
		t.Fatalf("sent %q", f.sent)
	}
	f.port.Receive(d[:0])
	if own := f.port.owners(); own[frameTX] != 0 || own[frameFree]+own[frameFill] != 64 {
		t.Fatalf("owners %v", own)
	}
	f.check()
}

func TestXSKPortKicks(t *testing.T) {
	for _, c := range []struct {
		name      string
		budget    int
		fail      []TXError
		batch     int
		wantKicks int
		wantLeft  uint32 // left on the TX ring after Transmit
		wantErrs  TXErrorCounts
	}{
		{name: "one kick per batch", batch: 64, wantKicks: 1},
		{name: "budget 32 kicks again while progressing", budget: 32, batch: 64, wantKicks: 2,
			wantErrs: TXErrorCounts{TXErrAgain: 1}},
		{name: "budget 8 stops at the kick limit", budget: 8, batch: 100, wantKicks: xskKicksPerFlush,
			wantLeft: 100 - 8*xskKicksPerFlush, wantErrs: TXErrorCounts{TXErrAgain: xskKicksPerFlush}},
		{name: "EAGAIN without progress waits for the next batch", fail: []TXError{TXErrAgain}, batch: 10,
			wantKicks: 1, wantLeft: 10, wantErrs: TXErrorCounts{TXErrAgain: 1}},
		{name: "ENETDOWN is counted", fail: []TXError{TXErrNetDown}, batch: 10, wantKicks: 1, wantLeft: 10,
			wantErrs: TXErrorCounts{TXErrNetDown: 1}},
		{name: "ENOBUFS is counted", fail: []TXError{TXErrNoBufs}, batch: 3, wantKicks: 1, wantLeft: 3,
			wantErrs: TXErrorCounts{TXErrNoBufs: 1}},
		{name: "EBUSY is counted", fail: []TXError{TXErrBusy}, batch: 3, wantKicks: 1, wantLeft: 3,
			wantErrs: TXErrorCounts{TXErrBusy: 1}},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := newFakeXSK(t, XDPConfig{Frames: 512, FillSize: 256, TxSize: 256})
			f.budget, f.fail = c.budget, c.fail
			for range c.batch {
				f.deliver([]byte("x"))
			}
			d := make([]Desc, c.batch)
			if n := f.port.Receive(d); n != c.batch {
				t.Fatalf("received %d", n)
			}
			f.port.Transmit(d)
			if f.kicks != c.wantKicks {
				t.Errorf("%d kicks, want %d", f.kicks, c.wantKicks)
			}
			if left := f.port.tx.pending(); left != c.wantLeft {
				t.Errorf("%d left on the TX ring, want %d", left, c.wantLeft)
			}
			s := f.c.snapshot()
			if s.TXErrors != c.wantErrs || s.TXKicks != uint64(c.wantKicks) {
				t.Errorf("kicks %d errors %v, want %v", s.TXKicks, s.TXErrors, c.wantErrs)
			}
			// Whatever was left goes out on later kicks (Wait's flush);
			// every chunk comes back.
			f.budget = 0
			for range 3 {
				f.port.pollReady()
			}
			if len(f.sent) != c.batch {
				t.Errorf("kernel sent %d of %d", len(f.sent), c.batch)
			}
			if own := f.port.owners(); own[frameTX] != 0 || own[frameHeld] != 0 {
				t.Errorf("owners %v", own)
			}
			f.check()
		})
	}
}

// TestXSKPortKickOnlyWhenAsked: with need-wakeup clear on the TX ring (a
// zero-copy driver busy sending) Transmit makes no syscall.
func TestXSKPortKickOnlyWhenAsked(t *testing.T) {
	f := newFakeXSK(t, XDPConfig{Frames: 64, FillSize: 64})
	f.port.tx.flags.Store(0)
	f.deliver([]byte("x"))
	d := make([]Desc, 1)
	f.port.Receive(d)
	f.port.Transmit(d)
	if f.kicks != 0 {
		t.Fatalf("%d kicks with need-wakeup clear", f.kicks)
	}
	f.port.tx.flags.Store(xskRingNeedWakeup)
	f.port.Transmit(nil) // the next batch, empty: still flushes
	if f.kicks != 1 || len(f.sent) != 1 {
		t.Fatalf("%d kicks, %d sent after need-wakeup was set", f.kicks, len(f.sent))
	}
}

// TestXSKPortFillWakeup: in zero-copy mode a refill wakes the driver when
// the fill ring asks; in copy mode never.
func TestXSKPortFillWakeup(t *testing.T) {
	for _, zc := range []bool{false, true} {
		t.Run(fmt.Sprint("zerocopy=", zc), func(t *testing.T) {
			f := newFakeXSK(t, XDPConfig{Frames: 64, FillSize: 64})
			f.port.zeroCopy = zc
			f.port.fill.flags.Store(xskRingNeedWakeup)
			f.deliver([]byte("x"))
			d := make([]Desc, 1)
			f.port.Receive(d)
			f.port.Release(d)
			f.port.Receive(d[:0]) // refills the released chunk
			want := 0
			if zc {
				want = 1
			}
			if f.wakes != want || f.c.rxWakeups.Load() != uint64(want) {
				t.Fatalf("%d wakeups, want %d", f.wakes, want)
			}
		})
	}
}

func TestXSKPortTXRingFull(t *testing.T) {
	f := newFakeXSK(t, XDPConfig{Frames: 256, FillSize: 128, TxSize: 64})
	f.fail = []TXError{TXErrAgain} // the kernel takes nothing
	for range 100 {
		f.deliver([]byte("x"))
	}
	d := make([]Desc, 100)
	if n := f.port.Receive(d); n != 100 {
		t.Fatalf("received %d", n)
	}
	if n := f.port.Transmit(d); n != 64 {
		t.Fatalf("Transmit took %d with a 64-entry TX ring", n)
	}
	if got := f.c.txRingFull.Load(); got != 36 {
		t.Fatalf("TXRingFull %d", got)
	}
	// The caller still owns d[64:].
	f.port.Release(d[64:])
	f.check()
}

func TestXSKPortPassAndRelease(t *testing.T) {
	f := newFakeXSK(t, XDPConfig{Frames: 16, FillSize: 16})
	for range 4 {
		f.deliver([]byte("x"))
	}
	d := make([]Desc, 4)
	f.port.Receive(d)
	f.port.Pass(d[:1])
	f.port.Release(d[1:])
	if own := f.port.owners(); own[frameFree] != 4 {
		t.Fatalf("owners %v, want the 4 chunks free", own)
	}
	s := f.c.snapshot()
	if s.Passed != 1 || s.Released != 3 || len(f.sent) != 0 {
		t.Fatalf("stats %+v", s)
	}
	f.port.Receive(d[:0])
	if own := f.port.owners(); own[frameFill] != 16 {
		t.Fatalf("owners %v after refill", own)
	}
	f.check()
}

func TestXSKPortZeroLengthTransmit(t *testing.T) {
	f := newFakeXSK(t, XDPConfig{Frames: 16, FillSize: 16})
	f.deliver([]byte("x"))
	d := make([]Desc, 1)
	f.port.Receive(d)
	d[0].Len = 0
	if n := f.port.Transmit(d); n != 1 {
		t.Fatalf("Transmit took %d", n)
	}
	if f.c.txInvalid.Load() != 1 || len(f.sent) != 0 || f.port.owners()[frameFree] != 1 {
		t.Fatalf("zero-length frame: invalid %d sent %d owners %v", f.c.txInvalid.Load(), len(f.sent), f.port.owners())
	}
}

// TestXSKPortStray: entries from the kernel naming chunks it was not given
// are counted and never handed to the worker.
func TestXSKPortStray(t *testing.T) {
	f := newFakeXSK(t, XDPConfig{Frames: 16, FillSize: 8})
	rx := &f.port.rx
	free := uint64(f.port.free[len(f.port.free)-1]) << f.port.shift
	for _, e := range []Desc{
		{Addr: free + 256, Len: 10},                // a free chunk
		{Addr: uint64(len(f.umem)) + 256, Len: 10}, // past the UMEM
		{Addr: 256, Len: uint32(f.cfg.FrameSize)},  // escapes its chunk
	} {
		p := rx.producer.Load()
		rx.entries[p&rx.mask] = e
		rx.producer.Store(p + 1)
	}
	f.deliver([]byte("good"))
	d := make([]Desc, 8)
	n := f.port.Receive(d)
	if n != 1 || string(f.umem[d[0].Addr:d[0].Addr+uint64(d[0].Len)]) != "good" {
		t.Fatalf("received %d: %+v", n, d[:n])
	}
	if s := f.c.stray.Load(); s != 3 {
		t.Fatalf("stray %d, want 3", s)
	}
	// A completion for a chunk not being sent is stray too.
	f.port.inTX = 1 // make Receive look at the completion ring
	comp := &f.port.comp
	comp.entries[comp.producer.Load()&comp.mask] = d[0].Addr
	comp.producer.Add(1)
	f.port.Receive(d[1:])
	f.port.inTX = 0
	if s := f.c.stray.Load(); s != 4 || f.port.state[d[0].Addr>>f.port.shift] != frameHeld {
		t.Fatalf("stray %d, chunk %v", s, f.port.state[d[0].Addr>>f.port.shift])
	}
}

func TestXSKPortPanicsOnWorkerBugs(t *testing.T) {
	for _, c := range []struct {
		name string
		bug  func(f *fakeXSK, d Desc)
		want string
	}{
		{"release twice", func(f *fakeXSK, d Desc) {
			f.port.Release([]Desc{d})
			f.port.Release([]Desc{d})
		}, "not held"},
		{"transmit after release", func(f *fakeXSK, d Desc) {
			f.port.Release([]Desc{d})
			f.port.Transmit([]Desc{d})
		}, "not held"},
		{"pass a chunk never received", func(f *fakeXSK, d Desc) {
			d.Addr += uint64(f.cfg.FrameSize)
			f.port.Pass([]Desc{d})
		}, "not held"},
		{"frame past its chunk", func(f *fakeXSK, d Desc) {
			d.Len = uint32(f.cfg.FrameSize)
			f.port.Transmit([]Desc{d})
		}, "escapes"},
		{"address past the UMEM", func(f *fakeXSK, d Desc) {
			d.Addr = uint64(len(f.umem))
			f.port.Release([]Desc{d})
		}, "escapes"},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := newFakeXSK(t, XDPConfig{Frames: 16, FillSize: 8})
			f.deliver([]byte("x"))
			d := make([]Desc, 1)
			f.port.Receive(d)
			defer func() {
				r := recover()
				if r == nil || !strings.Contains(fmt.Sprint(r), c.want) {
					t.Fatalf("recovered %v, want a panic about %q", r, c.want)
				}
			}()
			c.bug(f, d[0])
		})
	}
}

func TestXSKPortFillRingEmpty(t *testing.T) {
	f := newFakeXSK(t, XDPConfig{Frames: 8, FillSize: 8})
	for range 8 {
		f.deliver([]byte("x"))
	}
	if f.deliver([]byte("x")) {
		t.Fatal("delivered with no buffer on the fill ring")
	}
	d := make([]Desc, 8)
	f.port.Receive(d)
	if got := f.c.fillEmpty.Load(); got != 1 {
		t.Fatalf("FillRingEmpty %d, want 1", got)
	}
}

// TestXSKPortNoAllocs is the allocation contract of the hot path.
func TestXSKPortNoAllocs(t *testing.T) {
	f := newFakeXSK(t, XDPConfig{Frames: 512, FillSize: 256})
	frame := make([]byte, 64)
	d := make([]Desc, 64)
	f.budget = 32
	f.discard = true
	step := func(give func([]Desc)) {
		for range 64 {
			f.deliver(frame)
		}
		n := f.port.Receive(d)
		give(d[:n])
	}
	for _, c := range []struct {
		name string
		give func([]Desc)
	}{
		{"Receive+Transmit", func(d []Desc) { f.port.Transmit(d) }},
		{"Receive+Release", f.port.Release},
		{"Receive+Pass", f.port.Pass},
	} {
		t.Run(c.name, func(t *testing.T) {
			if a := testing.AllocsPerRun(100, func() { step(c.give) }); a != 0 {
				t.Fatalf("%v allocations per batch", a)
			}
		})
	}
}

// BenchmarkXSKPort measures the ring and ownership work per frame, with the
// fake kernel's side included: deliver, Receive, touch, Transmit (one kick
// per batch), completion.
func BenchmarkXSKPort(b *testing.B) {
	for _, batch := range []int{1, 16, 64} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			f := newFakeXSK(b, XDPConfig{})
			frame := make([]byte, 64)
			d := make([]Desc, batch)
			f.discard = true
			b.ReportAllocs()
			b.ResetTimer()
			for done := 0; done < b.N; {
				for range batch {
					f.deliver(frame)
				}
				n := f.port.Receive(d)
				for _, x := range d[:n] {
					f.umem[x.Addr] ^= 1
				}
				f.port.Transmit(d[:n])
				done += n
			}
		})
	}
}

// BenchmarkXSKFreeStack is the cost of finding 64 free chunks at 4096
// frames: a pop from the stack (here) against asavie/xdp's GetDescs, which
// scans its free flags from chunk 0 (BenchmarkAsavieGetDescs needs root).
func BenchmarkXSKFreeStack(b *testing.B) {
	f := newFakeXSK(b, XDPConfig{Frames: 4096, FillSize: 2048})
	p := f.port
	b.ReportAllocs()
	for b.Loop() {
		top := len(p.free)
		for i := 1; i <= 64; i++ {
			idx := p.free[top-i]
			p.state[idx] = frameFill
		}
		for i := 1; i <= 64; i++ {
			p.state[p.free[top-i]] = frameFree
		}
	}
}
