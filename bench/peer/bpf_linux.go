package peer

import (
	"fmt"
	"net"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
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
