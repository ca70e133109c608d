package nic

import (
	"fmt"
	"math/bits"
	"sync/atomic"
)

// xskPort is the user-space half of one AF_XDP socket: its four rings, the
// ownership of every UMEM chunk, and the counters. It implements the frame
// methods of Queue; XDP wraps it with the socket, the mappings and Wait.
// Tests build one over anonymous mappings and play the kernel's side
// themselves (ring_test.go), so all of this runs without privileges.
//
// # Frame ownership
//
// asavie/xdp v0.3.3 keeps one "free" bit per frame and sets it in Receive,
// as soon as a frame reaches the user, so its GetDescs can put a frame the
// worker still holds (one waiting on ARP, say) back on the fill ring: the
// kernel then receives into it while the worker is still reading or
// sending it. It also finds free frames by scanning the bits from frame 0
// on every call. Here each chunk has one of four owners, and every
// hand-over checks and moves it:
//
//	free --refill--> fill --Receive--> held --Transmit--> tx --completion--> free
//	free --Alloc---------------------> held --Release/Pass---------------------> free
//
// free chunks sit on a stack (O(1) per frame, no scan). Alloc takes from
// the same stack, but never so much that the kernel is left with fewer than
// allocReserve chunks to receive into (see Alloc). A worker handing
// back a frame it does not hold, or a descriptor that leaves its chunk, is
// a bug in the worker and panics; an entry from the kernel naming a chunk
// the kernel was not given is counted as Stray and left alone.
//
// An xskPort is driven by one goroutine; only its counters may be read
// concurrently (Stats).
type xskPort struct {
	fill xskProd[uint64]
	comp xskCons[uint64]
	rx   xskCons[Desc]
	tx   xskProd[Desc]

	umem     []byte
	chunk    uint64 // chunk size, a power of two
	shift    uint   // log2(chunk)
	headroom int    // offset of a received frame in its chunk

	state []xskFrameState // owner of each chunk
	free  []uint32        // stack of free chunk numbers; cap == len(state)
	inTX  uint32          // chunks in state frameTX

	// allocReserve is how many chunks Alloc leaves the kernel to receive
	// into, counting those on the fill ring and the free ones the next
	// refill posts there: half the fill ring, or half the UMEM when that
	// is smaller.
	allocReserve uint32

	zeroCopy bool // need-wakeup on the fill ring is only ever set by zero-copy drivers
	busyPoll bool // an empty RX ring makes a recvfrom that runs the NAPI (XDPConfig.BusyPoll)
	maxKicks int  // sendto calls per flush at most
	k        xskKicker

	c *xskCounters
}

// xskKicker is how a port prods the kernel. XDP implements it with
// syscalls; tests with a fake kernel.
type xskKicker interface {
	// kickTX asks the kernel to send what is on the TX ring (sendto with
	// MSG_DONTWAIT) and classifies a failure.
	kickTX() (e TXError, failed bool)
	// wakeRX tells a zero-copy driver that the fill ring has buffers
	// again (recvfrom with MSG_DONTWAIT).
	wakeRX()
}

// xskFrameState is the owner of a UMEM chunk.
type xskFrameState uint8

const (
	frameFree xskFrameState = iota // on the port's free stack
	frameFill                      // on the fill ring or in the kernel, to receive into
	frameHeld                      // received: the worker owns it
	frameTX                        // on the TX ring or being sent by the kernel
)

func (s xskFrameState) String() string {
	switch s {
	case frameFree:
		return "free"
	case frameFill:
		return "fill"
	case frameHeld:
		return "held"
	case frameTX:
		return "tx"
	}
	return fmt.Sprintf("xskFrameState(%d)", uint8(s))
}

// Indexes of the four rings in the arrays newXSKPort takes.
const (
	ringFill = iota
	ringComp
	ringRX
	ringTX
	numRings
)

// xskKicksPerFlush bounds the sendto calls one Transmit or Wait makes. In
// copy mode a sendto sends at most the socket's TX budget (32 frames
// unless XDP_MAX_TX_SKB_BUDGET raised it) and returns EAGAIN when more
// remain; the port kicks again while the kernel makes progress.
const xskKicksPerFlush = 8

// xskCounters are written by the worker and read by Stats, so they are
// atomic; each call adds to each at most once.
type xskCounters struct {
	received, transmitted, completed, passed, released atomic.Uint64
	allocated                                          atomic.Uint64
	txKicks                                            atomic.Uint64
	txErrors                                           [numTXErrors]atomic.Uint64
	txRingFull, txInvalid                              atomic.Uint64
	fillEmpty, rxWakeups, waits, stray                 atomic.Uint64
}

func (c *xskCounters) snapshot() XDPStats {
	s := XDPStats{
		Received:      c.received.Load(),
		Transmitted:   c.transmitted.Load(),
		Completed:     c.completed.Load(),
		Passed:        c.passed.Load(),
		Released:      c.released.Load(),
		Allocated:     c.allocated.Load(),
		TXKicks:       c.txKicks.Load(),
		TXRingFull:    c.txRingFull.Load(),
		TXInvalid:     c.txInvalid.Load(),
		FillRingEmpty: c.fillEmpty.Load(),
		RXWakeups:     c.rxWakeups.Load(),
		Waits:         c.waits.Load(),
		Stray:         c.stray.Load(),
	}
	for i := range c.txErrors {
		s.TXErrors[i] = c.txErrors[i].Load()
	}
	return s
}

func addNonZero(c *atomic.Uint64, n uint32) {
	if n != 0 {
		c.Add(uint64(n))
	}
}

// newXSKPort builds a port over a UMEM of cfg.Frames chunks and the four
// ring mappings (indexed ringFill..ringTX, laid out as offs say), and
// posts the first free chunks to the fill ring. cfg must have its
// defaults and be valid.
func newXSKPort(cfg XDPConfig, umem []byte, maps [numRings][]byte, offs [numRings]xskRingOffsets, zeroCopy bool, k xskKicker, c *xskCounters) (*xskPort, error) {
	if len(umem) != cfg.Frames*cfg.FrameSize {
		return nil, fmt.Errorf("umem of %d bytes for %d frames of %d", len(umem), cfg.Frames, cfg.FrameSize)
	}
	p := &xskPort{
		umem:     umem,
		chunk:    uint64(cfg.FrameSize),
		shift:    uint(bits.TrailingZeros(uint(cfg.FrameSize))),
		headroom: cfg.frameOffset(),
		state:    make([]xskFrameState, cfg.Frames),
		free:     make([]uint32, cfg.Frames),
		zeroCopy: zeroCopy,
		maxKicks: xskKicksPerFlush,
		k:        k,
		c:        c,

		allocReserve: uint32(min(cfg.FillSize, cfg.Frames) / 2),
	}
	for i := range p.free {
		p.free[i] = uint32(len(p.free) - 1 - i) // pop yields chunk 0 first
	}
	if err := bindRing(&p.fill.xskRing, maps[ringFill], offs[ringFill], uint32(cfg.FillSize)); err != nil {
		return nil, fmt.Errorf("fill ring: %w", err)
	}
	if err := bindRing(&p.comp.xskRing, maps[ringComp], offs[ringComp], uint32(cfg.CompSize)); err != nil {
		return nil, fmt.Errorf("completion ring: %w", err)
	}
	if err := bindRing(&p.rx.xskRing, maps[ringRX], offs[ringRX], uint32(cfg.RxSize)); err != nil {
		return nil, fmt.Errorf("rx ring: %w", err)
	}
	if err := bindRing(&p.tx.xskRing, maps[ringTX], offs[ringTX], uint32(cfg.TxSize)); err != nil {
		return nil, fmt.Errorf("tx ring: %w", err)
	}
	// The kernel starts every position at 0; read them anyway.
	p.fill.prod, p.fill.cons = p.fill.producer.Load(), p.fill.consumer.Load()
	p.tx.prod, p.tx.cons = p.tx.producer.Load(), p.tx.consumer.Load()
	p.rx.prod, p.rx.cons = p.rx.producer.Load(), p.rx.consumer.Load()
	p.comp.prod, p.comp.cons = p.comp.producer.Load(), p.comp.consumer.Load()
	p.refill()
	return p, nil
}

// Receive implements Queue.Receive: it reaps finished transmissions, moves
// up to len(d) received frames to the worker, and tops the fill ring up
// from the free stack.
func (p *xskPort) Receive(d []Desc) int {
	if p.inTX > 0 {
		p.complete()
	}
	n := p.rx.peek(uint32(min(len(d), 1<<31)))
	if n == 0 && p.busyPoll {
		p.k.wakeRX() // runs the NAPI here (preferred busy polling)
		n = p.rx.peek(uint32(min(len(d), 1<<31)))
	}
	k, stray := 0, uint32(0)
	for i := uint32(0); i < n; i++ {
		e := p.rx.get(i)
		idx := e.Addr >> p.shift
		if idx >= uint64(len(p.state)) || p.state[idx] != frameFill ||
			e.Addr+uint64(e.Len) > (idx+1)<<p.shift {
			stray++
			continue
		}
		p.state[idx] = frameHeld
		d[k] = Desc{Addr: e.Addr, Len: e.Len}
		k++
	}
	p.rx.release(n)
	if p.fill.pending() == 0 {
		p.c.fillEmpty.Add(1) // the kernel took every buffer we gave it
	}
	p.refill()
	addNonZero(&p.c.received, uint32(k))
	addNonZero(&p.c.stray, stray)
	return k
}

// refill posts every free chunk the fill ring has room for.
func (p *xskPort) refill() {
	top := uint32(len(p.free))
	if top == 0 {
		return
	}
	n := p.fill.reserve(top)
	for i := uint32(0); i < n; i++ {
		idx := p.free[top-1-i]
		p.state[idx] = frameFill
		p.fill.set(i, uint64(idx)<<p.shift)
	}
	p.free = p.free[:top-n]
	p.fill.submit(n)
	if n > 0 && p.zeroCopy && p.fill.needWakeup() {
		p.k.wakeRX()
		p.c.rxWakeups.Add(1)
	}
}

// complete moves chunks the kernel has finished sending back to the free
// stack.
func (p *xskPort) complete() {
	n := p.comp.peek(p.comp.size())
	freed, stray := uint32(0), uint32(0)
	for i := uint32(0); i < n; i++ {
		idx := p.comp.get(i) >> p.shift
		if idx >= uint64(len(p.state)) || p.state[idx] != frameTX {
			stray++
			continue
		}
		p.state[idx] = frameFree
		p.free = append(p.free, uint32(idx)) // within cap: one slot per chunk
		freed++
	}
	p.comp.release(n)
	p.inTX -= freed
	addNonZero(&p.c.completed, freed)
	addNonZero(&p.c.stray, stray)
}

// Transmit implements Queue.Transmit: it puts as many of d on the TX ring
// as fit and kicks the kernel when the TX ring asks for it (always in copy
// mode; in zero-copy mode only when the driver is idle). Kick failures are
// counted, never fatal: what the kernel did not take stays on the ring and
// the next Transmit or Wait kicks again. A zero-length frame is taken and
// dropped (TXInvalid), since the kernel would reject it and never complete
// its chunk.
func (p *xskPort) Transmit(d []Desc) int {
	if p.inTX > 0 {
		p.complete()
	}
	want := uint32(min(len(d), 1<<31))
	n := p.tx.reserve(want)
	w, invalid := uint32(0), uint32(0)
	for i := uint32(0); i < n; i++ {
		x := d[i]
		idx := p.take(x)
		if x.Len == 0 {
			p.state[idx] = frameFree
			p.free = append(p.free, idx)
			invalid++
			continue
		}
		p.state[idx] = frameTX
		p.tx.set(w, Desc{Addr: x.Addr, Len: x.Len}) // options 0: no metadata, no multi-buffer
		w++
	}
	p.tx.submit(w)
	p.inTX += w
	addNonZero(&p.c.transmitted, w)
	addNonZero(&p.c.txInvalid, invalid)
	addNonZero(&p.c.txRingFull, want-n)
	p.flushTX()
	return int(n)
}

// flushTX kicks the kernel while the TX ring holds frames it has not taken
// and it wants a kick for them, up to maxKicks times, stopping at the first
// kick that sends nothing.
func (p *xskPort) flushTX() {
	for range p.maxKicks {
		pend := p.tx.pending()
		if pend == 0 || !p.tx.needWakeup() {
			return
		}
		e, failed := p.k.kickTX()
		p.c.txKicks.Add(1)
		if !failed {
			return
		}
		p.c.txErrors[e].Add(1)
		if e != TXErrAgain || p.tx.pending() >= pend {
			return // no progress: retry on the next Transmit or Wait
		}
		p.complete() // make room on the completion ring for the next kick
	}
}

// Alloc implements Queue.Alloc: it reaps finished transmissions and hands
// out free chunks, each as an empty frame at the receive headroom, owned by
// the worker as a received frame is.
//
// The chunks come off the free stack that also feeds the fill ring, so
// Alloc must not starve reception: it takes a chunk only while the kernel
// keeps at least allocReserve (half the fill ring, FillSize/2, or half the
// UMEM when that is smaller) to receive into, counting the entries on the
// fill ring it has not consumed yet and the free chunks the next refill
// posts there. With the defaults (4096 chunks, a 2048-entry fill ring) a
// worker whose fill ring is full may take every free chunk (up to 2048,
// minus what it holds and what is in flight); as the kernel drains the
// fill ring, Alloc gives out less, and nothing once the kernel is down to
// 1024 buffers. The cost is one atomic load of the fill ring's consumer
// position; no system call.
func (p *xskPort) Alloc(d []Desc) int {
	if p.inTX > 0 {
		p.complete()
	}
	top := uint32(len(p.free))
	want := uint32(min(len(d), int(top)))
	if want == 0 {
		return 0
	}
	rx := p.fill.pending() + top // what the kernel can still receive into
	if rx <= p.allocReserve {
		return 0
	}
	n := min(want, rx-p.allocReserve)
	for i := uint32(0); i < n; i++ {
		idx := p.free[top-1-i]
		p.state[idx] = frameHeld
		d[i] = Desc{Addr: uint64(idx)<<p.shift + uint64(p.headroom)}
	}
	p.free = p.free[:top-n]
	addNonZero(&p.c.allocated, n)
	return int(n)
}

// Release implements Queue.Release: the chunks go back on the free stack,
// and to the fill ring at the next Receive.
func (p *xskPort) Release(d []Desc) {
	p.recycle(d)
	addNonZero(&p.c.released, uint32(len(d)))
}

// Pass implements Queue.Pass. AF_XDP has no way to hand a frame to the
// kernel's stack, so Pass counts the frames and releases them.
func (p *xskPort) Pass(d []Desc) {
	p.recycle(d)
	addNonZero(&p.c.passed, uint32(len(d)))
}

func (p *xskPort) recycle(d []Desc) {
	for _, x := range d {
		idx := p.take(x)
		p.state[idx] = frameFree
		p.free = append(p.free, idx) // within cap: one slot per chunk
	}
}

// take checks that the worker holds the chunk of x and that x stays inside
// it, and returns the chunk number. Anything else is a bug in the worker.
func (p *xskPort) take(x Desc) uint32 {
	idx := x.Addr >> p.shift
	if idx >= uint64(len(p.state)) || x.Addr+uint64(x.Len) > (idx+1)<<p.shift {
		panicEscape(x)
	}
	if p.state[idx] != frameHeld {
		panicNotHeld(x, p.state[idx])
	}
	return uint32(idx)
}

//go:noinline
func panicEscape(x Desc) {
	panic(fmt.Sprintf("nic: descriptor %+v escapes its chunk", x))
}

//go:noinline
func panicNotHeld(x Desc, s xskFrameState) {
	panic(fmt.Sprintf("nic: descriptor %+v given back, but its chunk is %v, not held by the worker", x, s))
}

// pollReady does what Wait does before it sleeps: reap completions, top up
// the fill ring, flush the TX ring. It reports whether frames are already
// waiting on the RX ring, in which case there is no need to sleep.
func (p *xskPort) pollReady() bool {
	if p.inTX > 0 {
		p.complete()
	}
	p.refill()
	p.flushTX()
	return p.rx.peek(1) > 0
}

// owners counts the chunks in each state (tests and invariant checks).
func (p *xskPort) owners() (n [4]int) {
	for _, s := range p.state {
		n[s]++
	}
	return n
}
