// Package nic is the packet I/O layer of the dataplane: the Queue interface a
// worker polls in batches, and its implementations. Mem, an in-memory queue,
// serves tests and benchmarks; the AF_XDP queue on real interfaces follows
// the same model.
//
// # Frames and ownership
//
// A queue owns a UMEM: one contiguous byte slice cut into chunks of
// ChunkSize bytes. A frame lives in one chunk and is named by a Desc: its
// bytes are UMEM()[d.Addr : d.Addr+d.Len]. The first Headroom bytes of each
// chunk are left free by the receive path, so a worker can grow a frame at
// the front (IP-in-IP encapsulation) by moving d.Addr back, without copying
// the payload. This is the AF_XDP model (rings of descriptors into a shared
// UMEM), so the worker code is the same for every implementation.
//
// Receive hands frames to the caller, who then owns them until it gives each
// one back exactly once: Transmit (the queue sends it, then reuses the
// chunk), Pass (to the kernel's stack where the port can, otherwise counted
// and dropped by the port) or Release (dropped, chunk reused). Alloc hands
// out empty chunks on the same terms, for a frame the caller builds itself:
// a frame received on one queue and sent out of another (two-armed
// operation) is copied into a chunk allocated on the queue it leaves by,
// since each queue sends only from its own UMEM. A Queue is used by one
// goroutine at a time: the worker that polls it.
package nic

import "errors"

// ErrNotSupported is returned where the platform lacks what a port needs.
var ErrNotSupported = errors.New("nic: not supported on this platform")

// Desc describes one frame in a queue's UMEM. It has the layout of the
// kernel's struct xdp_desc (addr, len, options), so rings of them can be
// shared with AF_XDP without conversion.
type Desc struct {
	Addr    uint64
	Len     uint32
	Options uint32
}

// Queue is one receive/transmit queue pair as a worker sees it.
type Queue interface {
	// UMEM returns the queue's frame memory. It does not change while the
	// queue is open.
	UMEM() []byte
	// ChunkSize returns the size of one UMEM chunk, a power of two.
	ChunkSize() int
	// Headroom returns the number of bytes free before each received frame
	// in its chunk.
	Headroom() int
	// Receive moves up to len(d) received frames to the caller and returns
	// how many. It never blocks.
	Receive(d []Desc) int
	// Transmit queues frames for sending and returns how many it took; the
	// caller keeps the rest (d[n:]) and must still give them back.
	Transmit(d []Desc) int
	// Pass hands frames to the kernel's network stack.
	Pass(d []Desc)
	// Release drops frames and recycles their chunks.
	Release(d []Desc)
	// Alloc moves up to len(d) free chunks to the caller and returns how
	// many: each d[i] names an empty frame at Headroom bytes into its
	// chunk (Addr = chunk base + Headroom, Len = 0). The caller writes the
	// frame, sets Len (it may also move Addr back, staying in the chunk)
	// and owns the chunk as it owns a received frame: it gives it back
	// exactly once, with Transmit or Release. A queue may keep some free
	// chunks back for receiving and return fewer than asked, or none. It
	// never blocks, allocates nothing and makes no system call.
	Alloc(d []Desc) int
}
