package nic

import (
	"errors"
	"fmt"
	"os"
)

// Defaults of XDPConfig, applied to its zero fields.
const (
	DefaultXDPFrames    = 4096
	DefaultXDPFrameSize = 2048
	DefaultXDPHeadroom  = 256
	DefaultXDPRingSize  = 2048
)

// xskPacketHeadroom is XDP_PACKET_HEADROOM: the kernel always starts a
// received frame this far past the UMEM headroom of its chunk, leaving the
// space for XDP programs (bpf_xdp_adjust_head).
const xskPacketHeadroom = 256

// xskMaxFrame is the largest frame of a 1500-byte MTU without FCS.
const xskMaxFrame = 1514

// XDPConfig configures one AF_XDP queue. Zero fields take the defaults
// noted on each. It is a plain value: OpenXDP copies it.
type XDPConfig struct {
	Iface   string // interface name; required
	QueueID int    // receive/transmit queue of Iface to bind

	Frames    int // UMEM chunks (default 4096)
	FrameSize int // bytes per chunk: a power of two from 2048 to the page size (default 2048)

	// Headroom is the number of bytes kept free in front of each received
	// frame in its chunk, so a worker can grow the frame at the front (IPIP
	// encapsulation needs 20). It must be at least 20 (default 256). The
	// kernel always leaves XDP_PACKET_HEADROOM (256) bytes there, so any
	// value up to 256 costs nothing: the queue registers max(0, Headroom-256)
	// as the UMEM's own headroom and frames start max(Headroom, 256) bytes
	// into their chunk, which is what (*XDP).Headroom reports.
	Headroom int

	// Ring sizes in entries, each a power of two (default 2048).
	FillSize, CompSize, RxSize, TxSize int

	// ZeroCopy asks for XDP_ZEROCOPY; when the driver refuses, the queue
	// binds in copy mode instead and Mode reports it. Without ZeroCopy the
	// queue binds with XDP_COPY.
	ZeroCopy bool

	// BusyPoll turns on AF_XDP preferred busy polling (SO_PREFER_BUSY_POLL,
	// SO_BUSY_POLL, SO_BUSY_POLL_BUDGET): a Receive that finds the RX ring
	// empty makes one recvfrom, in which the kernel runs the interface's
	// NAPI poll (XDP, and in copy mode the copy into the UMEM) on the
	// worker's own thread, instead of a softirq or a NAPI thread that the
	// worker would have to switch with. It needs the interface's
	// napi_defer_hard_irqs and gro_flush_timeout set (see the README), or
	// the kernel reschedules the NAPI at once after every busy poll. It
	// costs a system call per empty poll, which a busy-polling worker makes
	// anyway.
	BusyPoll bool

	// txBudget is passed to XDP_MAX_TX_SKB_BUDGET: 0 means TxSize, -1
	// leaves the kernel's default of 32 frames per sendto. Tests set it.
	txBudget int
}

// withDefaults returns c with every zero field set to its default.
func (c XDPConfig) withDefaults() XDPConfig {
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	def(&c.Frames, DefaultXDPFrames)
	def(&c.FrameSize, DefaultXDPFrameSize)
	def(&c.Headroom, DefaultXDPHeadroom)
	def(&c.FillSize, DefaultXDPRingSize)
	def(&c.CompSize, DefaultXDPRingSize)
	def(&c.RxSize, DefaultXDPRingSize)
	def(&c.TxSize, DefaultXDPRingSize)
	return c
}

// frameOffset is where a received frame starts in its chunk: the UMEM
// headroom plus XDP_PACKET_HEADROOM.
func (c XDPConfig) frameOffset() int { return max(c.Headroom, xskPacketHeadroom) }

// umemHeadroom is the headroom registered with XDP_UMEM_REG.
func (c XDPConfig) umemHeadroom() int { return c.frameOffset() - xskPacketHeadroom }

// Validate reports every problem with c (after defaults), joined.
func (c XDPConfig) Validate() error {
	c = c.withDefaults()
	var errs []error
	bad := func(field string, format string, args ...any) {
		errs = append(errs, fmt.Errorf("xdp config: %s: %s", field, fmt.Sprintf(format, args...)))
	}
	pow2 := func(v int) bool { return v > 0 && v&(v-1) == 0 }
	if c.Iface == "" {
		bad("iface", "required")
	}
	if c.QueueID < 0 {
		bad("queue", "%d is negative", c.QueueID)
	}
	if c.Frames < 1 || c.Frames > 1<<24 {
		bad("frames", "%d is not in [1, %d]", c.Frames, 1<<24)
	}
	page := os.Getpagesize()
	if !pow2(c.FrameSize) || c.FrameSize < 2048 || c.FrameSize > page {
		bad("frame size", "%d is not a power of two from 2048 to the page size %d", c.FrameSize, page)
	}
	if c.Headroom < 20 {
		bad("headroom", "%d is less than the 20 bytes IPIP encapsulation needs", c.Headroom)
	} else if room := c.FrameSize - c.frameOffset(); room < xskMaxFrame && pow2(c.FrameSize) && c.FrameSize >= 2048 {
		bad("headroom", "%d leaves %d bytes of a %d-byte frame, less than a %d-byte Ethernet frame",
			c.Headroom, room, c.FrameSize, xskMaxFrame)
	}
	for _, r := range []struct {
		name string
		v    int
	}{{"fill size", c.FillSize}, {"completion size", c.CompSize}, {"rx size", c.RxSize}, {"tx size", c.TxSize}} {
		if !pow2(r.v) || r.v > 1<<20 {
			bad(r.name, "%d is not a power of two up to %d", r.v, 1<<20)
		}
	}
	return errors.Join(errs...)
}

// XDPMode is the mode an AF_XDP socket was bound in.
type XDPMode int

const (
	// ModeCopy: the kernel copies frames between its buffers and the UMEM
	// (XDP_COPY). Works on every driver with XDP, veth included.
	ModeCopy XDPMode = iota
	// ModeZeroCopy: the driver DMAs straight into the UMEM (XDP_ZEROCOPY).
	ModeZeroCopy
)

func (m XDPMode) String() string {
	switch m {
	case ModeCopy:
		return "copy"
	case ModeZeroCopy:
		return "zerocopy"
	}
	return fmt.Sprintf("XDPMode(%d)", int(m))
}

// TXError classifies a failed transmit kick (sendto on the AF_XDP socket).
// None of them is fatal: the frames stay on the TX ring and the next
// Transmit or Wait kicks again.
type TXError int

const (
	// TXErrAgain is EAGAIN: the kernel sent its budget of frames and more
	// remain, or the completion ring or the device queue is full.
	TXErrAgain TXError = iota
	// TXErrBusy is EBUSY: the device dropped a frame (NET_XMIT_DROP); the
	// kernel completed it unsent.
	TXErrBusy
	// TXErrNoBufs is ENOBUFS: the kernel could not allocate for the send.
	TXErrNoBufs
	// TXErrNetDown is ENETDOWN: the interface is down.
	TXErrNetDown
	// TXErrOther is any other errno (ENXIO after the device went away,
	// EINTR, ...).
	TXErrOther

	numTXErrors
)

func (e TXError) String() string {
	switch e {
	case TXErrAgain:
		return "EAGAIN"
	case TXErrBusy:
		return "EBUSY"
	case TXErrNoBufs:
		return "ENOBUFS"
	case TXErrNetDown:
		return "ENETDOWN"
	case TXErrOther:
		return "other"
	}
	return fmt.Sprintf("TXError(%d)", int(e))
}

// TXErrorCounts counts failed kicks, indexed by TXError.
type TXErrorCounts [numTXErrors]uint64

// Total returns the number of failed kicks of every kind.
func (c TXErrorCounts) Total() uint64 {
	var n uint64
	for _, v := range c {
		n += v
	}
	return n
}

// XDPStats is a snapshot of an XDP queue's counters. The counters only grow.
type XDPStats struct {
	Received    uint64 // frames Receive handed to the worker
	Transmitted uint64 // frames Transmit put on the TX ring
	Completed   uint64 // transmitted frames the kernel has finished with
	Passed      uint64 // frames given to Pass (dropped: see (*XDP).Pass)
	Released    uint64 // frames given to Release
	Allocated   uint64 // empty frames Alloc handed out

	TXKicks    uint64        // sendto calls made to start transmission
	TXErrors   TXErrorCounts // failed kicks by errno
	TXRingFull uint64        // frames Transmit refused because the TX ring was full
	TXInvalid  uint64        // zero-length frames Transmit dropped instead of sending

	// FillRingEmpty counts the times the queue found the fill ring drained:
	// the kernel had no buffer left to receive into and drops frames
	// (Kernel.RxFillRingEmptyDescs counts those).
	FillRingEmpty uint64
	RXWakeups     uint64 // recvfrom calls made because the fill ring asked (zero-copy only)
	Waits         uint64 // poll calls made by Wait

	// Stray counts ring entries naming a frame the queue had not given the
	// kernel. It stays zero unless the kernel or the ring code is broken;
	// such frames are left alone rather than handed out twice.
	Stray uint64

	Kernel XDPKernelStats
}

// XDPKernelStats is the kernel's struct xdp_statistics for the socket.
type XDPKernelStats struct {
	RxDropped            uint64 // frames dropped for other reasons (too big, no buffer in copy mode)
	RxInvalidDescs       uint64 // invalid descriptors on the fill ring
	TxInvalidDescs       uint64 // invalid descriptors on the TX ring
	RxRingFull           uint64 // frames dropped because the RX ring was full
	RxFillRingEmptyDescs uint64 // times the kernel found the fill ring empty
	TxRingEmptyDescs     uint64 // times the kernel found the TX ring empty
}
