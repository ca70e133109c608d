package pktgen

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"

	"github.com/culvert-lb/culvert/nic"
)

// xdpProg is one of this package's XDP programs with its maps, attached to
// an interface as a bpf_link, never pinned: the kernel detaches it on
// close or when the process dies. Its methods are safe for concurrent use.
type xdpProg struct {
	mu       sync.Mutex
	iface    string
	counters *ebpf.Map // per-CPU array of numSlots progSlot
	xsks     *ebpf.Map // XSKMAP, Receiver only
	prog     *ebpf.Program
	link     link.Link
	mode     nic.AttachMode
	closed   bool
}

// progSlot is one per-CPU counter slot as the programs write it.
type progSlot struct{ Frames, Bytes uint64 }

// loadProg loads the program for m, with an XSKMAP of queues entries when
// queues > 0 (a Receiver's) and without (a sink's), unattached.
func loadProg(name string, m Match, queues int) (*xdpProg, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	p := &xdpProg{}
	var err error
	p.counters, err = ebpf.NewMap(&ebpf.MapSpec{Name: name + "_ctr", Type: ebpf.PerCPUArray, KeySize: 4, ValueSize: 16, MaxEntries: numSlots})
	if err != nil {
		return nil, fmt.Errorf("%s: counters: %w", name, err)
	}
	xsksFD := -1
	if queues > 0 {
		p.xsks, err = ebpf.NewMap(&ebpf.MapSpec{Name: name + "_xsks", Type: ebpf.XSKMap, KeySize: 4, ValueSize: 4, MaxEntries: uint32(queues)})
		if err != nil {
			p.close()
			return nil, fmt.Errorf("%s: xskmap: %w", name, err)
		}
		xsksFD = p.xsks.FD()
	}
	p.prog, err = ebpf.NewProgram(&ebpf.ProgramSpec{
		Name: name, Type: ebpf.XDP, License: "Apache-2.0",
		Instructions: progInstructions(m, p.counters.FD(), xsksFD),
	})
	if err != nil {
		p.close()
		return nil, fmt.Errorf("%s: load: %w", name, err)
	}
	return p, nil
}

// attach attaches the program to the interface named iface, resolved in
// the calling thread's network namespace, in mode (AttachAuto: native,
// else generic).
func (p *xdpProg) attach(iface string, mode nic.AttachMode) error {
	ifi, err := net.InterfaceByName(iface)
	if err != nil {
		return fmt.Errorf("attach: %w", err)
	}
	l, m, err := nic.AttachXDP(p.prog, ifi.Index, mode)
	if err != nil {
		return fmt.Errorf("attach to %s: %w", iface, err)
	}
	p.iface, p.link, p.mode = iface, l, m
	return nil
}

// setSocket puts the AF_XDP socket fd in the XSKMAP at queue.
func (p *xdpProg) setSocket(queue, fd int) error {
	if err := p.xsks.Put(uint32(queue), uint32(fd)); err != nil {
		return fmt.Errorf("xskmap[%d] = socket %d: %w", queue, fd, err)
	}
	return nil
}

// counts sums the counters over CPUs.
func (p *xdpProg) counts() (Counts, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return Counts{}, net.ErrClosed
	}
	var slots [numSlots]progSlot
	for i := range slots {
		var per []progSlot
		if err := p.counters.Lookup(uint32(i), &per); err != nil {
			return Counts{}, fmt.Errorf("read counters: %w", err)
		}
		for _, v := range per {
			slots[i].Frames += v.Frames
			slots[i].Bytes += v.Bytes
		}
	}
	return Counts{Packets: slots[slotTaken].Frames, Bytes: slots[slotTaken].Bytes,
		Flooded: slots[slotFlooded].Frames, NoSocket: slots[slotNoSocket].Frames}, nil
}

// close detaches the program and frees it and its maps. Further calls do
// nothing.
func (p *xdpProg) close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil
	}
	p.closed = true
	var err error
	if p.link != nil {
		if err = p.link.Close(); err != nil {
			err = fmt.Errorf("detach from %s: %w", p.iface, err)
		}
	}
	if p.prog != nil {
		p.prog.Close()
	}
	if p.xsks != nil {
		p.xsks.Close()
	}
	if p.counters != nil {
		p.counters.Close()
	}
	return err
}

// rebindWait bounds openQueue's retries. The kernel lets go of a closed
// AF_XDP socket's queue in deferred work: binding the queue again right
// after a Close fails with EBUSY for about 20 ms (measured on a veth,
// Linux 6.18), as when a Receiver is made for each trial.
const rebindWait = time.Second

// openQueue is nic.OpenXDP, retried while the queue is still held by a
// socket being released (EBUSY), for up to rebindWait.
func openQueue(cfg nic.XDPConfig) (*nic.XDP, error) {
	deadline := time.Now().Add(rebindWait)
	for {
		x, err := nic.OpenXDP(cfg)
		if err == nil || !errors.Is(err, unix.EBUSY) || time.Now().After(deadline) {
			return x, err
		}
		time.Sleep(5 * time.Millisecond)
	}
}
