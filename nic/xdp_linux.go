//go:build linux

package nic

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// XDP is one AF_XDP socket bound to one queue of an interface: a Queue
// whose frames live in a UMEM shared with the kernel. Its four rings and
// the ownership of every UMEM chunk are Culvert's own code (xskPort,
// ring.go); golang.org/x/sys/unix provides the socket calls. It uses
// nothing of github.com/asavie/xdp v0.3.3, whose Socket was measured
// against it (xdp_asavie_linux_test.go, build tag asavie) and fell short:
//
//   - Receive marks frames free as soon as it returns them, so the refill
//     idiom Fill(GetDescs(NumFreeFillSlots())) hands a frame the worker
//     still holds back to the kernel, which receives into it under the
//     worker (TestAsavieLimits shows the held frame overwritten).
//   - Transmit panics on any errno but EAGAIN, EBUSY and EINTR: ENETDOWN
//     when the link goes down kills the worker (TestAsavieLimits). Here
//     every errno is counted and the frames wait on the ring.
//   - Transmit makes a sendto on every call, needed or not: 1.7-2.4 us for
//     a call with nothing to send, against 5 ns here, which kicks only when
//     frames are pending and the TX ring asks (BenchmarkTransmitNothing).
//     It also makes one kick per call, and copy mode sends 32 frames per
//     sendto, so its TX ring stays full and frames it received are dropped.
//   - GetDescs scans the frame table from frame 0: 1.8-2.2 us to find 64
//     free frames of 4096 with 2048 on the fill ring, against 160-210 ns
//     for the free stack here (BenchmarkAsavieGetDescs,
//     BenchmarkXSKFreeStack).
//   - Its ring accesses are plain loads and stores, fences commented out,
//     which the kernel's acquire/release protocol does not allow on weakly
//     ordered CPUs and which the Go compiler may reorder. It binds without
//     XDP_USE_NEED_WAKEUP and cannot share a UMEM.
//
// Reflecting frames on a veth in copy mode (BenchmarkXDPReflect, 7
// interleaved runs on a shared 2-core machine at load 10-20, so noisy):
// median 330k frames/s and 1.3 us of reflector CPU per frame here, against
// 205k frames/s and 2.15 us for asavie's Socket; XDP was ahead in each of
// the 7 pairs. Raising the kernel's per-sendto budget from 32 to the TX
// ring size (XDP_MAX_TX_SKB_BUDGET, Linux 6.17; OpenXDP sets it when the
// kernel has it) nearly halves the sendto calls and saved ~20% CPU per frame.
//
// What the two share is the socket setup sequence (UMEM_REG, ring sizes,
// MMAP_OFFSETS, mmap, bind), which is the kernel's API.
//
// # Use
//
// The steering program puts FD into its XSKMAP at QueueID. A worker then
// polls in batches: Receive, rewrite the frames in place, give each back
// exactly once with Transmit, Pass or Release; when Receive finds nothing,
// Wait sleeps in poll(2) until frames arrive, so an idle worker uses no
// CPU and a busy one never enters the kernel to receive.
//
// Receive, Transmit, Release and Pass allocate nothing and take no locks.
// Receive and Release make no syscall (Receive may call recvfrom in
// zero-copy mode when the driver asks for a fill-ring wakeup); Transmit
// makes one sendto per batch when the kernel asks for a kick, which in copy
// mode is every batch (copy-mode transmission runs inside sendto), and up
// to xskKicksPerFlush when the kernel's per-call budget runs out.
//
// # Concurrency
//
// An XDP is owned by one worker goroutine: Receive, Transmit, Pass,
// Release and Wait must not be called concurrently. Stats and FD are safe
// from any goroutine at any time, Close included; Mode, UMEM, ChunkSize and
// Headroom do not change while the queue is open. Close must not run
// concurrently with the worker's calls, and after it none of them may be
// made again (Wait returns net.ErrClosed; the others panic). There is no
// useful zero value: use OpenXDP.
type XDP struct {
	port  *xskPort
	c     xskCounters
	cfg   XDPConfig
	mode  XDPMode
	zcErr error // why bind refused zero-copy, when it was asked for
	sys   xskSys
	umem  []byte
	rings [numRings][]byte // mappings of fill, comp, rx, tx

	mu sync.Mutex // guards fd (in sys) between Stats and Close
}

var _ Queue = (*XDP)(nil)

// xskSys kicks the kernel with syscalls on the socket.
type xskSys struct{ fd int }

// kickTX implements xskKicker.
func (s *xskSys) kickTX() (TXError, bool) {
	_, _, e := unix.Syscall6(unix.SYS_SENDTO, uintptr(s.fd), 0, 0, unix.MSG_DONTWAIT, 0, 0)
	switch e {
	case 0:
		return 0, false
	case unix.EAGAIN:
		return TXErrAgain, true
	case unix.EBUSY:
		return TXErrBusy, true
	case unix.ENOBUFS:
		return TXErrNoBufs, true
	case unix.ENETDOWN:
		return TXErrNetDown, true
	}
	return TXErrOther, true
}

// wakeRX implements xskKicker. Its errors do not matter: the next Receive
// or Wait tries again.
func (s *xskSys) wakeRX() {
	unix.Syscall6(unix.SYS_RECVFROM, uintptr(s.fd), 0, 0, unix.MSG_DONTWAIT, 0, 0)
}

// xskMaxTXSkbBudget is XDP_MAX_TX_SKB_BUDGET (Linux 6.17): how many frames
// one sendto may send in copy mode, 32 by default. x/sys/unix does not
// have it yet.
const xskMaxTXSkbBudget = 9

// OpenXDP creates an AF_XDP socket on cfg.Iface queue cfg.QueueID with its
// UMEM and rings, binds it with XDP_USE_NEED_WAKEUP (in zero-copy mode if
// cfg.ZeroCopy and the driver supports it, else in copy mode), and fills
// the fill ring. It must run in the network namespace of the interface.
// Frames reach the socket only once a program redirects them into an
// XSKMAP holding FD.
func OpenXDP(cfg XDPConfig) (*XDP, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	ifc, err := net.InterfaceByName(cfg.Iface)
	if err != nil {
		return nil, fmt.Errorf("xdp %s queue %d: %w", cfg.Iface, cfg.QueueID, err)
	}
	x := &XDP{cfg: cfg, sys: xskSys{fd: -1}}
	if err := x.open(ifc.Index); err != nil {
		x.Close()
		return nil, fmt.Errorf("xdp %s queue %d: %w", cfg.Iface, cfg.QueueID, err)
	}
	return x, nil
}

func (x *XDP) open(ifindex int) error {
	cfg := x.cfg
	fd, err := unix.Socket(unix.AF_XDP, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("socket: %w", err)
	}
	x.sys.fd = fd
	x.umem, err = unix.Mmap(-1, 0, cfg.Frames*cfg.FrameSize, unix.PROT_READ|unix.PROT_WRITE,
		unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_POPULATE)
	if err != nil {
		return fmt.Errorf("mmap umem: %w", err)
	}
	if err := xskRegisterUMEM(fd, x.umem, uint32(cfg.FrameSize), uint32(cfg.umemHeadroom())); err != nil {
		return fmt.Errorf("register umem (%d bytes; RLIMIT_MEMLOCK?): %w", len(x.umem), err)
	}
	for _, o := range []struct {
		opt, n int
		name   string
	}{
		{unix.XDP_UMEM_FILL_RING, cfg.FillSize, "fill"},
		{unix.XDP_UMEM_COMPLETION_RING, cfg.CompSize, "completion"},
		{unix.XDP_RX_RING, cfg.RxSize, "rx"},
		{unix.XDP_TX_RING, cfg.TxSize, "tx"},
	} {
		if err := unix.SetsockoptInt(fd, unix.SOL_XDP, o.opt, o.n); err != nil {
			return fmt.Errorf("size %s ring: %w", o.name, err)
		}
	}
	off, err := xskMmapOffsets(fd)
	if err != nil {
		return fmt.Errorf("ring offsets: %w", err)
	}
	var offs [numRings]xskRingOffsets
	conv := func(o unix.XDPRingOffset) xskRingOffsets {
		return xskRingOffsets{producer: o.Producer, consumer: o.Consumer, desc: o.Desc, flags: o.Flags}
	}
	offs[ringFill], offs[ringComp], offs[ringRX], offs[ringTX] = conv(off.Fr), conv(off.Cr), conv(off.Rx), conv(off.Tx)
	for i, r := range []struct {
		pgoff int64
		n     int
		esize uint64
	}{
		ringFill: {unix.XDP_UMEM_PGOFF_FILL_RING, cfg.FillSize, 8},
		ringComp: {unix.XDP_UMEM_PGOFF_COMPLETION_RING, cfg.CompSize, 8},
		ringRX:   {unix.XDP_PGOFF_RX_RING, cfg.RxSize, 16},
		ringTX:   {unix.XDP_PGOFF_TX_RING, cfg.TxSize, 16},
	} {
		x.rings[i], err = unix.Mmap(fd, r.pgoff, int(offs[i].desc+uint64(r.n)*r.esize),
			unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
		if err != nil {
			return fmt.Errorf("mmap ring %d: %w", i, err)
		}
	}
	if cfg.TxSize >= 32 && cfg.txBudget >= 0 {
		budget := cfg.TxSize
		if cfg.txBudget > 0 {
			budget = cfg.txBudget
		}
		// Best effort: kernels before 6.17 answer ENOPROTOOPT and keep 32.
		unix.SetsockoptInt(fd, unix.SOL_XDP, xskMaxTXSkbBudget, budget)
	}
	if err := x.bind(ifindex); err != nil {
		return err
	}
	if cfg.BusyPoll {
		for _, o := range []struct {
			opt, n int
			name   string
		}{
			{unix.SO_PREFER_BUSY_POLL, 1, "SO_PREFER_BUSY_POLL"},
			{unix.SO_BUSY_POLL, 20, "SO_BUSY_POLL"},
			{unix.SO_BUSY_POLL_BUDGET, 64, "SO_BUSY_POLL_BUDGET"},
		} {
			if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, o.opt, o.n); err != nil {
				return fmt.Errorf("busy poll: %s: %w", o.name, err)
			}
		}
	}
	x.port, err = newXSKPort(cfg, x.umem, x.rings, offs, x.mode == ModeZeroCopy, &x.sys, &x.c)
	if err == nil {
		x.port.busyPoll = cfg.BusyPoll
	}
	return err
}

// bind binds the socket, trying zero-copy first when asked, and records the
// mode the kernel reports.
func (x *XDP) bind(ifindex int) error {
	sa := &unix.SockaddrXDP{Ifindex: uint32(ifindex), QueueID: uint32(x.cfg.QueueID)}
	var zcErr error
	if x.cfg.ZeroCopy {
		sa.Flags = unix.XDP_USE_NEED_WAKEUP | unix.XDP_ZEROCOPY
		err := unix.Bind(x.sys.fd, sa)
		if err == nil {
			return x.readMode()
		}
		zcErr = fmt.Errorf("bind zero-copy: %w", err)
		x.zcErr = zcErr
		// A failed bind leaves the socket unbound, so copy mode can
		// be tried on it.
	}
	sa.Flags = unix.XDP_USE_NEED_WAKEUP | unix.XDP_COPY
	if err := unix.Bind(x.sys.fd, sa); err != nil {
		if zcErr != nil {
			return fmt.Errorf("%v; bind copy: %w", zcErr, err)
		}
		return fmt.Errorf("bind: %w", err)
	}
	return x.readMode()
}

func (x *XDP) readMode() error {
	flags, err := unix.GetsockoptInt(x.sys.fd, unix.SOL_XDP, unix.XDP_OPTIONS)
	if err != nil {
		return fmt.Errorf("read xdp options: %w", err)
	}
	x.mode = ModeCopy
	if flags&unix.XDP_OPTIONS_ZEROCOPY != 0 {
		x.mode = ModeZeroCopy
	}
	return nil
}

// FD returns the socket's file descriptor, for the steering program's
// XSKMAP, or -1 once closed.
func (x *XDP) FD() int {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.sys.fd
}

// Mode reports whether the socket is bound in copy or zero-copy mode, as
// the kernel reports it (XDP_OPTIONS).
func (x *XDP) Mode() XDPMode { return x.mode }

// ZeroCopyError returns why the kernel refused zero-copy mode when
// XDPConfig.ZeroCopy asked for it and the queue fell back to copy mode, or
// nil.
func (x *XDP) ZeroCopyError() error { return x.zcErr }

// UMEM implements Queue.
func (x *XDP) UMEM() []byte { return x.umem }

// ChunkSize implements Queue: cfg.FrameSize.
func (x *XDP) ChunkSize() int { return x.cfg.FrameSize }

// Headroom implements Queue: received frames start this far into their
// chunk, max(cfg.Headroom, 256) (see XDPConfig.Headroom), unless an XDP
// program moved the frame's start with bpf_xdp_adjust_head.
func (x *XDP) Headroom() int { return x.cfg.frameOffset() }

// Receive implements Queue. It never blocks: see Wait.
func (x *XDP) Receive(d []Desc) int { return x.port.Receive(d) }

// Transmit implements Queue. A descriptor may start anywhere in its chunk
// (in the headroom, after encapsulation), as long as it ends inside it. Its
// Options are ignored. The chunk is Addr &^ (ChunkSize-1), so a frame grown
// by more than Headroom would name the chunk before its own: the worker must
// stay within Headroom. See xskPort.Transmit for kicks and errors.
func (x *XDP) Transmit(d []Desc) int { return x.port.Transmit(d) }

// Pass implements Queue. An AF_XDP socket cannot hand a frame to the
// kernel's stack, so Pass counts the frames (Stats.Passed) and releases
// them. The steering program passes to the kernel what the dataplane does
// not own before it reaches the socket, so little should arrive here.
func (x *XDP) Pass(d []Desc) { x.port.Pass(d) }

// Release implements Queue. The chunks go back to the fill ring at the
// next Receive or Wait.
func (x *XDP) Release(d []Desc) { x.port.Release(d) }

// Alloc implements Queue: empty frames in free chunks of this queue's UMEM,
// for frames the worker copies in from another queue. It keeps half the
// fill ring's worth of chunks for the kernel to receive into (see
// xskPort.Alloc), so it may return fewer than asked, or none. No system
// call, no allocation.
func (x *XDP) Alloc(d []Desc) int { return x.port.Alloc(d) }

// Wait is the worker's idle sleep. It reaps finished transmissions, tops up
// the fill ring and flushes the TX ring, then sleeps in poll(2) until
// frames are waiting on the RX ring or timeout passes (a negative timeout
// waits for ever, zero only checks). It returns at once if frames are
// already waiting. A signal interrupting poll does not end the wait early.
// In zero-copy mode poll also wakes a driver that asked for it; in copy
// mode the kernel receives without help and poll also drives pending
// transmissions. It allocates nothing.
func (x *XDP) Wait(timeout time.Duration) error {
	err := WaitAny(timeout, x)
	if err != nil && !errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("xdp %s queue %d: %w", x.cfg.Iface, x.cfg.QueueID, err)
	}
	return err
}

// MaxWaitAny is the most queues WaitAny sleeps on at once.
const MaxWaitAny = 16

// WaitAny is Wait over several queues at once, for a worker that polls a
// queue on each of several interfaces (two-armed operation): it does for
// each queue what Wait does before it sleeps (reap completions, top up the
// fill ring, flush the TX ring), returns at once if any has frames waiting,
// and otherwise sleeps in one ppoll(2) over all their sockets until one has
// frames or timeout passes (negative: for ever; zero: only check). A signal
// does not end the wait early. It takes at most MaxWaitAny queues, all
// driven by the calling goroutine, and allocates nothing. It returns
// net.ErrClosed if any queue is closed.
func WaitAny(timeout time.Duration, qs ...*XDP) error {
	if len(qs) > MaxWaitAny {
		return fmt.Errorf("xdp: wait on %d queues, at most %d", len(qs), MaxWaitAny)
	}
	for _, x := range qs {
		if x.sys.fd < 0 {
			return net.ErrClosed
		}
	}
	ready := false
	for _, x := range qs {
		// Every queue, even after one is found ready: each has its fill
		// ring to top up and its TX ring to flush.
		if x.port.pollReady() {
			ready = true
		}
	}
	if ready || len(qs) == 0 {
		return nil
	}
	var pfd [MaxWaitAny]unix.PollFd
	for i, x := range qs {
		x.c.waits.Add(1)
		pfd[i] = unix.PollFd{Fd: int32(x.sys.fd), Events: unix.POLLIN}
	}
	var deadline time.Time
	if timeout > 0 {
		deadline = time.Now().Add(timeout)
	}
	var ts unix.Timespec
	for {
		tsp := &ts
		if timeout < 0 {
			tsp = nil
		} else {
			ts = unix.NsecToTimespec(int64(timeout))
		}
		_, err := unix.Ppoll(pfd[:len(qs)], tsp, nil)
		if err == unix.EINTR {
			if timeout > 0 {
				if timeout = time.Until(deadline); timeout <= 0 {
					return nil
				}
			}
			continue
		}
		if err != nil {
			return fmt.Errorf("xdp: poll %d queues: %w", len(qs), err)
		}
		return nil
	}
}

// Stats returns the queue's counters and the kernel's statistics for the
// socket. After Close it returns the counters and net.ErrClosed.
func (x *XDP) Stats() (XDPStats, error) {
	s := x.c.snapshot()
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.sys.fd < 0 {
		return s, net.ErrClosed
	}
	k, err := xskStatistics(x.sys.fd)
	if err != nil {
		return s, fmt.Errorf("xdp %s queue %d: statistics: %w", x.cfg.Iface, x.cfg.QueueID, err)
	}
	s.Kernel = k
	return s, nil
}

// Close closes the socket (the kernel unbinds it and drops it from any
// XSKMAP) and unmaps the rings and the UMEM. Frames the worker still holds
// become invalid. Close is idempotent.
func (x *XDP) Close() error {
	x.mu.Lock()
	defer x.mu.Unlock()
	var errs []error
	if x.sys.fd >= 0 {
		if err := unix.Close(x.sys.fd); err != nil {
			errs = append(errs, fmt.Errorf("close: %w", err))
		}
		x.sys.fd = -1
	}
	// Drop every pointer into the mappings before unmapping them, so a
	// call after Close fails on a nil pointer instead of touching freed
	// memory.
	x.port = nil
	for i, m := range x.rings {
		if m != nil {
			if err := unix.Munmap(m); err != nil {
				errs = append(errs, fmt.Errorf("munmap ring %d: %w", i, err))
			}
			x.rings[i] = nil
		}
	}
	if x.umem != nil {
		if err := unix.Munmap(x.umem); err != nil {
			errs = append(errs, fmt.Errorf("munmap umem: %w", err))
		}
		x.umem = nil
	}
	return errors.Join(errs...)
}
