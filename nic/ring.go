package nic

import "sync/atomic"

// AF_XDP rings, as user space sees them.
//
// Each of the four rings of an AF_XDP socket is a power-of-two array of
// entries in memory shared with the kernel (mmap of the socket), with two
// free-running 32-bit positions: the producer writes entries at producer
// and then publishes them by advancing producer; the consumer reads
// entries at consumer and hands the slots back by advancing consumer.
// Positions wrap naturally at 2^32 and index the array through mask.
//
//	ring     user space is   entries  carries
//	fill     producer        uint64   addresses of empty chunks for the kernel to receive into
//	rx       consumer        Desc     received frames
//	tx       producer        Desc     frames to send
//	comp     consumer        uint64   addresses of frames the kernel has sent
//
// The design follows gVisor's pkg/xdp rings and libxdp's xsk_ring_prod /
// xsk_ring_cons: each side keeps cached copies of both positions in
// private memory and reads the other side's shared word only when the
// cached view runs out, so a batch costs one acquire load and one release
// store of shared words however many entries it moves. asavie/xdp v0.3.3
// reads and writes the shared words with plain loads and stores; here they
// are sync/atomic operations, which order the entry accesses against the
// position updates as the kernel's smp_load_acquire/smp_store_release
// pairs expect (xsk_queue.h), on every architecture Go supports.
//
// None of this is safe for concurrent use on the user side: one goroutine
// (the queue's worker) drives all four rings.

// xskRingOffsets says where a ring's shared words and entries lie in its
// mapping (the kernel's struct xdp_ring_offset, from XDP_MMAP_OFFSETS).
type xskRingOffsets struct {
	producer, consumer, desc, flags uint64
}

// xskRing is the state common to both roles.
type xskRing[T any] struct {
	// producer is written by the producing side (the kernel for rx and
	// comp, us for fill and tx) with release semantics.
	producer *atomic.Uint32
	// consumer is written by the consuming side (us for rx and comp, the
	// kernel for fill and tx) with release semantics.
	consumer *atomic.Uint32
	// flags is written by the kernel: XDP_RING_NEED_WAKEUP.
	flags *atomic.Uint32
	// entries are written by the producing side before it publishes them.
	entries []T
	mask    uint32
}

// xskRingNeedWakeup is XDP_RING_NEED_WAKEUP.
const xskRingNeedWakeup = 1

// needWakeup reports whether the kernel asked to be woken (by sendto for
// tx, by poll or recvfrom for fill) before it looks at the ring again.
func (r *xskRing[T]) needWakeup() bool { return r.flags.Load()&xskRingNeedWakeup != 0 }

func (r *xskRing[T]) size() uint32 { return r.mask + 1 }

// xskProd is a ring user space produces to (fill, tx).
type xskProd[T any] struct {
	xskRing[T]
	prod uint32 // private: our producer position, the value last published
	cons uint32 // private: the kernel's consumer position as last read
}

// reserve returns how many of n entries can be written now, reading the
// kernel's consumer position only when the cached view has fewer than n
// free slots. The caller writes them with set(0..k-1) and publishes them
// with submit(k).
func (r *xskProd[T]) reserve(n uint32) uint32 {
	free := r.size() - (r.prod - r.cons)
	if free < n {
		r.cons = r.consumer.Load() // acquire: the kernel is done with those slots
		free = r.size() - (r.prod - r.cons)
	}
	return min(free, n)
}

// set writes the i'th reserved entry.
func (r *xskProd[T]) set(i uint32, v T) { r.entries[(r.prod+i)&r.mask] = v }

// submit publishes the first n reserved entries.
func (r *xskProd[T]) submit(n uint32) {
	if n == 0 {
		return
	}
	r.prod += n
	r.producer.Store(r.prod) // release: entries before position
}

// pending returns how many published entries the kernel has not consumed
// yet. It reads the shared consumer position.
func (r *xskProd[T]) pending() uint32 {
	r.cons = r.consumer.Load()
	return r.prod - r.cons
}

// xskCons is a ring user space consumes from (rx, comp).
type xskCons[T any] struct {
	xskRing[T]
	prod uint32 // private: the kernel's producer position as last read
	cons uint32 // private: our consumer position, the value last published
}

// peek returns how many entries, up to n, are ready to read, reading the
// kernel's producer position only when the cached view holds fewer than n.
// The caller reads them with get(0..k-1) and hands them back with
// release(k).
func (r *xskCons[T]) peek(n uint32) uint32 {
	avail := r.prod - r.cons
	if avail < n {
		r.prod = r.producer.Load() // acquire: entries before position
		avail = r.prod - r.cons
	}
	return min(avail, n)
}

// get returns the i'th peeked entry.
func (r *xskCons[T]) get(i uint32) T { return r.entries[(r.cons+i)&r.mask] }

// release hands the first n peeked entries back to the kernel.
func (r *xskCons[T]) release(n uint32) {
	if n == 0 {
		return
	}
	r.cons += n
	r.consumer.Store(r.cons) // release: our reads of the entries come first
}
