package nat

import (
	"fmt"
	"math"
	"math/bits"
	"math/rand/v2"
	"sync/atomic"
	"time"
)

// SNAT source-port defaults.
//
// DefaultPortLo..DefaultPortHi is every port above the well-known range:
// 64512 ports per local address.
const (
	DefaultPortLo uint16 = 1024
	DefaultPortHi uint16 = 65535
)

// DefaultQuarantine is how long a released port stays out of use before
// Get hands it out again, so that a backend still holding the old
// connection in TIME_WAIT (60 s on Linux) does not reject the next SYN from
// the same (local address, port).
//
// MinQuarantine is the smallest quarantine the configuration layer accepts.
// NewPortPool itself takes any non-negative value so that tests can use a
// short one; the appliance's Validate enforces MinQuarantine.
const (
	DefaultQuarantine = 60 * time.Second
	MinQuarantine     = 60 * time.Second
)

// portSlot is one entry of a PortPool's FIFO ring: a port and the earliest
// time Get may hand it out again.
type portSlot struct {
	readyAt int64
	port    uint16
}

// poolPad keeps fields written by different goroutines on different cache
// lines.
type poolPad [64]byte

// PortPool allocates SNAT source ports from one dataplane worker's share of
// one local address's port range.
//
// # Model
//
// Ports are unique per local address across all backends, which trivially
// keeps a port from being in use twice for one (local address, backend)
// pair. SplitPorts divides each local address's range among the workers so
// that no two workers ever share a port and allocation needs no writes
// shared between workers. Every port of the share is at any time in exactly
// one of three places:
//
//   - out: handed out by Get and not yet given back;
//   - the ring: a FIFO of released ports, each with the time it becomes
//     ready (release time + quarantine). The ring starts with every port of
//     the share, ready at once;
//   - the unget stack: ports the worker took but never put on the wire.
//
// Get takes the top of the unget stack if there is one, else the head of
// the ring if the head is ready. Because ready times only grow along the
// ring (Release makes them non-decreasing), a head that is not ready means
// no port is: Get reports ok=false and the caller counts a drop. Release
// appends to the ring; Unget pushes on the stack. A per-port "out" bitmap
// makes Release and Unget of a port that is not out (a double release, a
// port from another share) fail instead of putting a port in two places.
//
// # Concurrency
//
// A PortPool is single-producer/single-consumer. Get, Unget and Available
// belong to the worker goroutine that owns the share; Release belongs to the
// connection-table sweeper that expires flows. Calls on one side must not
// overlap each other (one goroutine, or calls serialized by a lock, as
// conntrack.Table.Sweep serializes its callbacks); the two sides run
// concurrently. Neither side takes a lock or allocates; they meet only in
// the ring's head and tail positions (each written by one side, read by the
// other with atomic loads) and in the out bitmap (atomic And/Or). Len, Size
// and Range may be called from any goroutine. The zero value is not usable;
// build pools with NewPortPool.
//
// # Time
//
// now is nanoseconds on the caller's monotonic clock (the clock of
// conntrack.Time), the same clock on both sides. A port released at t is
// never handed out before t + quarantine, whatever order Release calls
// arrive in: a Release whose ready time would be earlier than the previous
// Release's is held back to that previous ready time.
//
// # Capacity
//
// A port stays held for the life of its connection, then for the conntrack
// timeout that follows the close (TIME_WAIT, 120 s) until the sweeper
// releases it, then for the quarantine (60 s). With short connections one
// local address with the default range therefore sustains
//
//	64512 ports / (120 s + 60 s) ≈ 358 new connections per second
//
// and, in general, ports / (mean connection lifetime + 180 s). A burst may
// use all 64512 ports at once. A rate R needs ceil(R × 180 s / 64512) local
// addresses with short connections: 3 for 1,000/s, 28 for 10,000/s, 280 for
// 100,000/s. Each worker holds 1/n of every address, so the figure assumes
// RSS spreads new flows evenly; the busiest worker runs out first.
type PortPool struct {
	// Set by NewPortPool, read-only afterwards.
	lo, hi     uint16
	size       uint32
	mask       uint32 // len(ring) - 1; len(ring) is a power of two >= size
	quarantine int64
	ring       []portSlot
	// out has bit i set while port lo+i is out. The worker sets bits (Get)
	// and clears them (Unget); the sweeper clears them (Release). Both use
	// atomic Or/And.
	//
	// The bitmap turns a double release, which would otherwise put one port
	// in the ring twice and hand it to two flows, into a refused Release.
	// It costs two locked operations per Get/Release pair: 27 ns against
	// 15.5 ns without it (BenchmarkGetRelease/release, 2-vCPU VM, Go 1.26),
	// once per new flow.
	out []atomic.Uint32

	_ poolPad
	// Written by the worker only.
	head       atomic.Uint32 // ring consumer position; read by Release (overflow check) and Len
	cachedTail uint32        // the worker's last load of tail
	stack      []uint16      // unget stack; cap(stack) == size, so a push never grows it
	stackLen   atomic.Uint32 // len(stack), for Len from other goroutines

	_ poolPad
	// Written by the sweeper only.
	tail       atomic.Uint32 // ring producer position; read by Get, Available and Len
	cachedHead uint32        // the sweeper's last load of head
	lastReady  int64         // ready time of the newest ring entry

	_ poolPad
}

// NewPortPool returns a pool holding every port in [lo, hi], all available
// at once, that keeps a released port out of use for quarantine.
//
// It panics if lo is 0, lo > hi or quarantine is negative: the range and
// the quarantine come from a validated configuration (which also requires
// quarantine >= MinQuarantine; NewPortPool does not, so that tests can use
// short quarantines).
func NewPortPool(lo, hi uint16, quarantine time.Duration) *PortPool {
	portCheckRange(lo, hi)
	if quarantine < 0 {
		panic(fmt.Sprintf("nat: negative port quarantine %v", quarantine))
	}
	size := uint32(hi-lo) + 1
	capacity := uint32(1) << bits.Len32(size-1) // smallest power of two >= size
	p := &PortPool{
		lo:         lo,
		hi:         hi,
		size:       size,
		mask:       capacity - 1,
		quarantine: int64(quarantine),
		ring:       make([]portSlot, capacity),
		out:        make([]atomic.Uint32, (size+31)/32),
		stack:      make([]uint16, 0, size),
		lastReady:  math.MinInt64,
	}
	for i := range size {
		p.ring[i] = portSlot{readyAt: math.MinInt64, port: lo + uint16(i)}
	}
	p.tail.Store(size)
	p.cachedTail = size
	return p
}

// Shuffle puts the ports of a new pool in random order; without it Get
// hands them out from lo up. Call it before the first Get.
//
// The dataplane shuffles every pool: the two appliances of an HA pair then
// do not hand out the same ports in the same order, which after a
// failover would make the new master's first ports clash, one after
// another, with its peer's flows toward the same backend; and the ports
// are not predictable from outside.
func (p *PortPool) Shuffle() {
	if p.head.Load() != 0 || len(p.stack) != 0 {
		panic("nat: Shuffle of a pool in use")
	}
	rand.Shuffle(int(p.size), func(i, j int) { p.ring[i], p.ring[j] = p.ring[j], p.ring[i] })
}

// Get hands out a port, or reports ok=false when every port is out or in
// quarantine at now. It prefers a port given back by Unget (no quarantine,
// last in first out), then the oldest released port.
//
// Worker goroutine only. Get does not allocate, lock or block.
func (p *PortPool) Get(now int64) (port uint16, ok bool) {
	if n := len(p.stack); n > 0 {
		port = p.stack[n-1]
		p.stack = p.stack[:n-1]
		p.stackLen.Store(uint32(n - 1))
		p.markOut(port)
		return port, true
	}
	h := p.head.Load()
	if h == p.cachedTail {
		p.cachedTail = p.tail.Load()
		if h == p.cachedTail {
			return 0, false
		}
	}
	s := &p.ring[h&p.mask]
	if s.readyAt > now {
		// FIFO: the head is the oldest release, so nothing behind it is
		// ready either.
		return 0, false
	}
	port = s.port
	p.head.Store(h + 1)
	p.markOut(port)
	return port, true
}

// markOut sets port's out bit. The port came from the ring or the stack, so
// it cannot already be out.
func (p *PortPool) markOut(port uint16) {
	i := uint32(port - p.lo)
	bit := uint32(1) << (i & 31)
	if p.out[i>>5].Or(bit)&bit != 0 {
		panic(fmt.Sprintf("nat: port %d handed out while already out", port))
	}
}

// markIn clears port's out bit and reports whether it was set, that is
// whether port belongs to this share and was out.
func (p *PortPool) markIn(port uint16) bool {
	if port < p.lo || port > p.hi {
		return false
	}
	i := uint32(port - p.lo)
	bit := uint32(1) << (i & 31)
	return p.out[i>>5].And(^bit)&bit != 0
}

// Unget gives back a port that Get handed out but that was never used on
// the wire (for example, the flow insert failed). The port skips the
// quarantine: the next Get returns it. Unget reports false and changes
// nothing if port is not out (outside the share, never handed out, or
// already given back).
//
// Worker goroutine only. Unget does not allocate, lock or block. A port
// that any packet has carried must go back through Release instead. Nor
// should a port go back by Unget when the insert failed because a live flow
// already holds it (one imported from an HA peer, whose port this pool never
// handed out): the next Get would return the same port. Keep it out; the
// Release made when that flow expires then returns it to the pool.
func (p *PortPool) Unget(port uint16) bool {
	if !p.markIn(port) {
		return false
	}
	p.stack = append(p.stack, port) // never grows: at most size ports are in
	p.stackLen.Store(uint32(len(p.stack)))
	return true
}

// Release gives back a port whose flow has expired at now. Get hands it out
// again no earlier than now + quarantine (later if an earlier Release
// carried a later time). Release reports false and changes nothing if port
// is not out (outside the share, never handed out, already released or
// given back by Unget); the caller should count that as a bug.
//
// Release is the sweeper's side (see the PortPool concurrency rules): calls
// must not overlap one another. It does not allocate, lock or block.
func (p *PortPool) Release(port uint16, now int64) bool {
	if !p.markIn(port) {
		return false
	}
	t := p.tail.Load()
	if t-p.cachedHead >= p.size {
		p.cachedHead = p.head.Load()
		if t-p.cachedHead >= p.size {
			// The out bitmap admits each port once, so the ring holds at
			// most size-1 ports here.
			panic(fmt.Sprintf("nat: port ring of %d-%d full on release of %d", p.lo, p.hi, port))
		}
	}
	ready := now + p.quarantine
	if ready < now { // overflow: never ready before the end of time
		ready = math.MaxInt64
	}
	if ready < p.lastReady {
		ready = p.lastReady
	}
	p.lastReady = ready
	p.ring[t&p.mask] = portSlot{readyAt: ready, port: port}
	p.tail.Store(t + 1)
	return true
}

// Len returns the number of ports not out: those Get could return now and
// those in quarantine. It may be called from any goroutine; while the worker
// or the sweeper is running the answer is a snapshot that may already be
// stale, which is fine for metrics.
func (p *PortPool) Len() int {
	h := p.head.Load() // before tail, so tail-h cannot go negative
	t := p.tail.Load()
	return int(t-h) + int(p.stackLen.Load())
}

// Available returns the number of ports Get could hand out at now without
// any further Release: given-back ports plus ring entries whose quarantine
// has ended. Worker goroutine only (it reads ring entries); O(log n).
func (p *PortPool) Available(now int64) int {
	h := p.head.Load()
	t := p.tail.Load()
	// Ready times are non-decreasing from head to tail, so the ready
	// entries are a prefix: find its length by binary search.
	lo, hi := uint32(0), t-h
	for lo < hi {
		mid := lo + (hi-lo)/2
		if p.ring[(h+mid)&p.mask].readyAt <= now {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	return len(p.stack) + int(lo)
}

// Size returns the number of ports in the share. Any goroutine.
func (p *PortPool) Size() int { return int(p.size) }

// Range returns the first and last port of the share. Any goroutine.
func (p *PortPool) Range() (lo, hi uint16) { return p.lo, p.hi }

// SplitPorts divides the ports [lo, hi] into n contiguous, disjoint shares
// that together cover the range, one per worker, in ascending order. Share
// sizes differ by at most one (the first ones are larger). Each share
// [s[0], s[1]] is inclusive.
//
// It panics if lo is 0, lo > hi, n < 1 or n exceeds the number of ports;
// the configuration is validated before it gets here.
func SplitPorts(lo, hi uint16, n int) [][2]uint16 {
	portCheckRange(lo, hi)
	total := int(hi-lo) + 1
	if n < 1 || n > total {
		panic(fmt.Sprintf("nat: cannot split ports %d-%d into %d shares", lo, hi, n))
	}
	shares := make([][2]uint16, n)
	each, extra := total/n, total%n
	start := int(lo)
	for i := range shares {
		size := each
		if i < extra {
			size++
		}
		shares[i] = [2]uint16{uint16(start), uint16(start + size - 1)}
		start += size
	}
	return shares
}

// portCheckRange panics unless [lo, hi] is a non-empty range of valid
// source ports.
func portCheckRange(lo, hi uint16) {
	if lo == 0 || lo > hi {
		panic(fmt.Sprintf("nat: invalid port range %d-%d", lo, hi))
	}
}
