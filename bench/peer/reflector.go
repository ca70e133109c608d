package peer

import (
	"net"
	"sync/atomic"

	"github.com/culvert-lb/culvert/nic"
)

// BatchSize is how many frames a Reflector loop takes off a ring at once,
// as the dataplane worker does.
const BatchSize = 64

// SpinPolls is how many empty polls in a row a Reflector loop makes before
// it sleeps in poll(2), as the dataplane worker does.
const SpinPolls = 64

// ReflectorConfig describes a Reflector. The zero value reflects the lab's
// services toward its first backend on the server segment, with loop q
// pinned to CPU q.
type ReflectorConfig struct {
	// ToServer is the destination MAC of the frames the reflector sends
	// toward the backends: those that arrive on the client side (every
	// frame, one-armed). Empty: the first backend on the server segment.
	ToServer net.HardwareAddr
	// ToClient is the destination MAC of frames that arrive on the server
	// side of a two-armed appliance and leave by the client side. Empty:
	// the gateway's (lab.Lab.Gateway). Unused one-armed.
	ToClient net.HardwareAddr
	// CPU pins loop 0 (the one owning queue 0 of each interface) to this
	// CPU and loop q to CPU+q, modulo the CPU count, as the daemon pins
	// worker q to CPU q. AnyCPU leaves them unpinned.
	CPU int
	// Steer is what the steering program hands to the reflector's sockets.
	// Zero: the lab's VIP with its HTTP, HTTPS and UDP echo ports.
	Steer Steer
	// BusyPoll opens the queues with preferred busy polling, as the
	// daemon does with busy_poll (nic.XDPConfig.BusyPoll).
	BusyPoll bool
}

// Steer is the content of the steering program's maps: VIPs, services and
// local (SNAT) addresses, as nic.Steering.Update takes them.
type Steer struct {
	VIPs     [][4]byte
	Services []nic.SteerService
	Locals   [][4]byte
}

// ReflectorStats are a Reflector's counters, summed over its loops, since
// it started. The zero value is no frames.
type ReflectorStats struct {
	Received  uint64 // frames taken off the RX rings
	Forwarded uint64 // frames put on a TX ring
	Short     uint64 // frames shorter than an Ethernet header, released
	NoChunk   uint64 // two-armed: no free chunk on the other interface, released
	TXFull    uint64 // frames the TX ring refused, released
	// Steered is what the steering programs redirected to the sockets;
	// what they passed to the kernel instead is in Passed and
	// RedirectFailed.
	Steered, Passed, RedirectFailed uint64
}

// loopCounters are one loop's counters, written only by the loop (a plain
// load and store of each, after every batch) and read by Stats from any
// goroutine. Padded so that loops on different CPUs do not share a line.
type loopCounters struct {
	received, forwarded, short, noChunk, txFull atomic.Uint64
	_                                           [64 - 5*8]byte
}

func (c *loopCounters) add(v *atomic.Uint64, n int) {
	if n > 0 {
		v.Store(v.Load() + uint64(n))
	}
}

// arm is one interface's queue in a loop, and the MACs written into the
// frames that leave by it.
type arm struct {
	q     nic.Queue
	umem  []byte
	chunk uint64
	src   [6]byte // the interface's own MAC
	dst   [6]byte // the next hop's
}

func newArm(q nic.Queue, src, dst [6]byte) arm {
	return arm{q: q, umem: q.UMEM(), chunk: uint64(q.ChunkSize()), src: src, dst: dst}
}

// reflectLoop is the work of one Reflector thread: one queue on each of
// one or two interfaces. One-armed, a frame goes back out of the queue it
// came in on with its MACs rewritten. Two-armed, a frame that came in on
// one interface is copied into a chunk allocated on the other interface's
// queue (each queue sends only from its own UMEM), rewritten there and
// sent, and the original is released, as the dataplane worker does.
//
// A reflectLoop is owned by one goroutine; only c may be read elsewhere.
type reflectLoop struct {
	arms []arm
	c    *loopCounters

	rx, tx, drop, alloc [BatchSize]nic.Desc
}

// poll takes one batch off each arm and returns the number of frames
// received. It allocates nothing, takes no lock and makes no system call
// beyond the queues' own (a TX kick).
func (r *reflectLoop) poll() int {
	if len(r.arms) == 1 {
		return r.reflect(&r.arms[0])
	}
	return r.cross(&r.arms[0], &r.arms[1]) + r.cross(&r.arms[1], &r.arms[0])
}

// reflect sends a batch of a's frames back out of a.
func (r *reflectLoop) reflect(a *arm) int {
	n := a.q.Receive(r.rx[:])
	if n == 0 {
		return 0
	}
	ntx, ndrop := 0, 0
	for _, d := range r.rx[:n] {
		if d.Len < 14 {
			r.drop[ndrop] = d
			ndrop++
			continue
		}
		eth := a.umem[d.Addr : d.Addr+12]
		copy(eth[0:6], a.dst[:])
		copy(eth[6:12], a.src[:])
		r.tx[ntx] = d
		ntx++
	}
	short := ndrop
	sent := a.q.Transmit(r.tx[:ntx])
	ndrop += copy(r.drop[ndrop:], r.tx[sent:ntx])
	if ndrop > 0 {
		a.q.Release(r.drop[:ndrop])
	}
	r.c.add(&r.c.received, n)
	r.c.add(&r.c.forwarded, sent)
	r.c.add(&r.c.short, short)
	r.c.add(&r.c.txFull, ntx-sent)
	return n
}

// cross moves a batch of in's frames to out.
func (r *reflectLoop) cross(in, out *arm) int {
	n := in.q.Receive(r.rx[:])
	if n == 0 {
		return 0
	}
	got := out.q.Alloc(r.alloc[:n])
	used, ntx, short, noChunk := 0, 0, 0, 0
	for _, src := range r.rx[:n] {
		switch {
		case src.Len < 14:
			short++
			continue
		case used == got || uint64(src.Len) > out.chunk:
			noChunk++
			continue
		}
		dst := r.alloc[used]
		used++
		// Copy behind the headroom, or earlier if the frame would not fit
		// in the rest of the chunk.
		base := dst.Addr &^ (out.chunk - 1)
		if dst.Addr+uint64(src.Len) > base+out.chunk {
			dst.Addr = base + out.chunk - uint64(src.Len)
		}
		dst.Len = src.Len
		f := out.umem[dst.Addr : dst.Addr+uint64(dst.Len)]
		copy(f, in.umem[src.Addr:src.Addr+uint64(src.Len)])
		copy(f[0:6], out.dst[:])
		copy(f[6:12], out.src[:])
		r.tx[ntx] = dst
		ntx++
	}
	in.q.Release(r.rx[:n])
	if used < got {
		out.q.Release(r.alloc[used:got])
	}
	sent := out.q.Transmit(r.tx[:ntx])
	if sent < ntx {
		out.q.Release(r.tx[sent:ntx])
	}
	r.c.add(&r.c.received, n)
	r.c.add(&r.c.forwarded, sent)
	r.c.add(&r.c.short, short)
	r.c.add(&r.c.noChunk, noChunk)
	r.c.add(&r.c.txFull, ntx-sent)
	return n
}

// sum adds the loops' counters into s.
func sumLoops(s *ReflectorStats, cs []*loopCounters) {
	for _, c := range cs {
		s.Received += c.received.Load()
		s.Forwarded += c.forwarded.Load()
		s.Short += c.short.Load()
		s.NoChunk += c.noChunk.Load()
		s.TXFull += c.txFull.Load()
	}
}
