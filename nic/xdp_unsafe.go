//go:build linux

package nic

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// The socket options of AF_XDP that pass structs by pointer, which
// golang.org/x/sys/unix has no typed wrappers for.

// xskRegisterUMEM registers umem with the socket (XDP_UMEM_REG) in aligned
// mode: chunks of chunk bytes, headroom bytes of UMEM headroom in each.
func xskRegisterUMEM(fd int, umem []byte, chunk, headroom uint32) error {
	reg := unix.XDPUmemReg{
		Addr:     uint64(uintptr(unsafe.Pointer(&umem[0]))),
		Len:      uint64(len(umem)),
		Size:     chunk,
		Headroom: headroom,
	}
	_, _, e := unix.Syscall6(unix.SYS_SETSOCKOPT, uintptr(fd), unix.SOL_XDP, unix.XDP_UMEM_REG,
		uintptr(unsafe.Pointer(&reg)), unsafe.Sizeof(reg), 0)
	if e != 0 {
		return e
	}
	return nil
}

// xskMmapOffsets returns where the shared words and entries of each ring
// lie in its mapping (XDP_MMAP_OFFSETS). It needs a kernel that reports
// the flags word (5.4 and later), since need-wakeup depends on it.
func xskMmapOffsets(fd int) (unix.XDPMmapOffsets, error) {
	var off unix.XDPMmapOffsets
	size := uint32(unsafe.Sizeof(off))
	_, _, e := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(fd), unix.SOL_XDP, unix.XDP_MMAP_OFFSETS,
		uintptr(unsafe.Pointer(&off)), uintptr(unsafe.Pointer(&size)), 0)
	if e != 0 {
		return off, e
	}
	if size != uint32(unsafe.Sizeof(off)) {
		return off, unix.EOPNOTSUPP // pre-5.4 layout without ring flags
	}
	return off, nil
}

// xskStatistics reads the socket's struct xdp_statistics (XDP_STATISTICS).
func xskStatistics(fd int) (XDPKernelStats, error) {
	var st unix.XDPStatistics
	size := uint32(unsafe.Sizeof(st))
	_, _, e := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(fd), unix.SOL_XDP, unix.XDP_STATISTICS,
		uintptr(unsafe.Pointer(&st)), uintptr(unsafe.Pointer(&size)), 0)
	if e != 0 {
		return XDPKernelStats{}, e
	}
	return XDPKernelStats{
		RxDropped:            st.Rx_dropped,
		RxInvalidDescs:       st.Rx_invalid_descs,
		TxInvalidDescs:       st.Tx_invalid_descs,
		RxRingFull:           st.Rx_ring_full,
		RxFillRingEmptyDescs: st.Rx_fill_ring_empty_descs,
		TxRingEmptyDescs:     st.Tx_ring_empty_descs,
	}, nil
}
