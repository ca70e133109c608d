package peer

import (
	"errors"
	"fmt"
	"net"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"

	"github.com/culvert-lb/culvert/nic"
)

// loadXDP loads an XDP program built by build.
func loadXDP(name string, build func() (asm.Instructions, error)) (*ebpf.Program, error) {
	ins, err := build()
	if err != nil {
		return nil, err
	}
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{Name: name, Type: ebpf.XDP, License: "Apache-2.0", Instructions: ins})
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", name, err)
	}
	return prog, nil
}

// attachXDP attaches prog to the interface with index ifindex in the
// calling thread's namespace as a bpf_link: in native mode, or in generic
// mode when native fails.
func attachXDP(prog *ebpf.Program, ifindex int) (link.Link, nic.AttachMode, error) {
	lk, err := link.AttachXDP(link.XDPOptions{Program: prog, Interface: ifindex, Flags: link.XDPDriverMode})
	if err == nil {
		return lk, nic.AttachNative, nil
	}
	lk, err2 := link.AttachXDP(link.XDPOptions{Program: prog, Interface: ifindex, Flags: link.XDPGenericMode})
	if err2 == nil {
		return lk, nic.AttachGeneric, nil
	}
	return nil, 0, errors.Join(fmt.Errorf("native: %w", err), fmt.Errorf("generic: %w", err2))
}

// ifindex returns the index of the named interface in the calling thread's
// namespace.
func ifindex(name string) (int, error) {
	ifc, err := net.InterfaceByName(name)
	if err != nil {
		return 0, err
	}
	return ifc.Index, nil
}

// sumPerCPU sums slot key of a per-CPU array of uint64.
func sumPerCPU(m *ebpf.Map, key uint32) (uint64, error) {
	var vals []uint64
	if err := m.Lookup(key, &vals); err != nil {
		return 0, fmt.Errorf("read %v[%d]: %w", m, key, err)
	}
	var n uint64
	for _, v := range vals {
		n += v
	}
	return n, nil
}
