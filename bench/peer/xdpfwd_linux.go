package peer

import (
	"errors"
	"fmt"
	"sync"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"

	"github.com/culvert-lb/culvert/bench/lab"
	"github.com/culvert-lb/culvert/nic"
)

// XDPForwarder is an in-kernel XDP forwarder on the appliance's client-side
// interface: frames to the VIP get a backend's MAC as destination and the
// appliance's as source and leave again, with XDP_TX one-armed or with
// bpf_redirect to the server-side interface two-armed; everything else
// passes to the kernel. It is DSR without user space: the lab must be made
// with lab.Options.DSR for the backends to accept the VIP's traffic.
//
// The backend of a frame is chosen by its source port modulo the number of
// backends (see xdpfwdProgram.instructions): a generator that varies the
// source port spreads evenly, and a flow stays on one backend, at no cost
// beyond a division. One backend MAC makes it a plain L2 forwarder.
//
// A frame that XDP sends into a veth (XDP_TX, or a redirect) lands on the
// ring of the veth's peer, which must have NAPI (an XDP program, or GRO on)
// or the frame is dropped. With GRO alone it is not enough for XDP_TX: the
// kernel (veth_xdp_flush, Linux 6.18) wakes the peer's NAPI after an
// XDP_TX only if the peer has an XDP program, so the frames wait on the
// ring until other traffic to the peer wakes it. StartXDPForwarder
// therefore attaches a pass-everything program to the peer of the
// interface the frames leave by (a switch port), unless it has a program
// already; Close detaches it.
//
// The program is attached as a bpf_link, never pinned: the kernel detaches
// it on Close or when the process dies. Its methods are safe for concurrent
// use. There is no useful zero value: use StartXDPForwarder.
type XDPForwarder struct {
	stats *ebpf.Map
	prog  *ebpf.Program
	mode  nic.AttachMode

	mu     sync.Mutex
	links  []link.Link     // the forwarder's, then any pass program's
	extra  []*ebpf.Program // pass programs
	closed bool
}

// StartXDPForwarder loads the forwarder for lab l and attaches it to the
// appliance's client-side interface, in native mode or else generic mode
// (Mode reports which).
func StartXDPForwarder(l *lab.Lab, cfg XDPForwarderConfig) (*XDPForwarder, error) {
	vip := cfg.VIP
	if !vip.IsValid() {
		vip = l.VIP
	}
	if !vip.Is4() {
		return nil, fmt.Errorf("xdp forwarder: VIP %v is not IPv4", vip)
	}
	p := xdpfwdProgram{vip: vip.As4(), self: [6]byte(l.ServerSide.MAC)}
	if len(cfg.Backends) == 0 {
		for _, b := range segmentBackends(l) {
			p.backends = append(p.backends, [6]byte(b.LinkOn(lab.SegmentServer).MAC))
		}
	}
	for i, m := range cfg.Backends {
		b, err := mac6(fmt.Sprintf("xdp forwarder: Backends[%d]", i), m)
		if err != nil {
			return nil, err
		}
		p.backends = append(p.backends, b)
	}
	if len(applianceLinks(l)) == 2 {
		p.redirect = l.ServerSide.Index
	}
	f := &XDPForwarder{}
	var err error
	f.stats, err = ebpf.NewMap(&ebpf.MapSpec{Name: "xdpfwd_stats", Type: ebpf.PerCPUArray, KeySize: 4, ValueSize: 8, MaxEntries: fwdSlots})
	if err != nil {
		return nil, fmt.Errorf("xdp forwarder: counters: %w", err)
	}
	p.statsFD = f.stats.FD()
	f.prog, err = loadXDP("xdpfwd", p.instructions)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("xdp forwarder: %w", err)
	}
	if err := f.ensurePeerXDP(l, l.ServerSide); err != nil {
		f.Close()
		return nil, fmt.Errorf("xdp forwarder: %w", err)
	}
	err = l.Appliance.Do(func() error {
		lk, mode, err := nic.AttachXDP(f.prog, l.ClientSide.Index, nic.AttachAuto)
		if err != nil {
			return fmt.Errorf("attach to %s: %w", l.ClientSide.Name, err)
		}
		f.links = append([]link.Link{lk}, f.links...)
		f.mode = mode
		return nil
	})
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("xdp forwarder: %w", err)
	}
	return f, nil
}

// ensurePeerXDP attaches a pass-everything program to the peer of out
// unless the peer has an XDP program already.
func (f *XDPForwarder) ensurePeerXDP(l *lab.Lab, out *lab.Link) error {
	var peer *lab.Host
	for _, h := range l.Hosts() {
		if h.Name == out.PeerHost {
			peer = h
		}
	}
	if peer == nil {
		return fmt.Errorf("no host %q, the peer of %s", out.PeerHost, out.Name)
	}
	return peer.Do(func() error {
		pl, err := netlink.LinkByName(out.Peer)
		if err != nil {
			return err
		}
		if x := pl.Attrs().Xdp; x != nil && x.Attached {
			return nil
		}
		prog, err := loadXDP("xdp_pass", func() (asm.Instructions, error) { return xdpPassInstructions(), nil })
		if err != nil {
			return err
		}
		f.extra = append(f.extra, prog)
		lk, _, err := nic.AttachXDP(prog, pl.Attrs().Index, nic.AttachAuto)
		if err != nil {
			return fmt.Errorf("pass program on %s: %w", out.Peer, err)
		}
		f.links = append(f.links, lk)
		return nil
	})
}

// Mode returns the mode the program was attached in: AttachNative or
// AttachGeneric.
func (f *XDPForwarder) Mode() nic.AttachMode { return f.mode }

// Stats returns the program's counters summed over CPUs.
func (f *XDPForwarder) Stats() (XDPForwarderStats, error) {
	fwd, err1 := sumPerCPU(f.stats, fwdSlotForwarded)
	pass, err2 := sumPerCPU(f.stats, fwdSlotPassed)
	return XDPForwarderStats{Forwarded: fwd, Passed: pass}, errors.Join(err1, err2)
}

// Close detaches the programs and frees them and the counters. Further
// calls do nothing.
func (f *XDPForwarder) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return nil
	}
	f.closed = true
	var errs []error
	for _, lk := range f.links {
		errs = append(errs, lk.Close())
	}
	for _, p := range append(f.extra, f.prog) {
		if p != nil {
			errs = append(errs, p.Close())
		}
	}
	if f.stats != nil {
		errs = append(errs, f.stats.Close())
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("xdp forwarder: close: %w", err)
	}
	return nil
}
