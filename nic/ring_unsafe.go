package nic

import (
	"fmt"
	"sync/atomic"
	"unsafe"
)

// The only unsafe part of the rings: pointing their shared words and entry
// arrays into a mapping. The mapping is memory outside the Go heap (an mmap
// of the socket, or an anonymous mmap in tests), so the garbage collector
// neither moves nor frees it; it stays valid until munmap, which Close does
// after the last use.

// bindRing points r into mem, a mapping of a ring of size entries laid out
// as off says. It checks that every field lies inside mem and is aligned.
func bindRing[T any](r *xskRing[T], mem []byte, off xskRingOffsets, size uint32) error {
	var zero T
	esize := uint64(unsafe.Sizeof(zero))
	if size == 0 || size&(size-1) != 0 {
		return fmt.Errorf("ring size %d is not a power of two", size)
	}
	need := off.desc + uint64(size)*esize
	for _, w := range []uint64{off.producer, off.consumer, off.flags} {
		if w+4 > need {
			need = w + 4
		}
		if w%4 != 0 {
			return fmt.Errorf("ring word at offset %d is not 4-byte aligned", w)
		}
	}
	if need > uint64(len(mem)) {
		return fmt.Errorf("ring of %d entries needs %d bytes, mapping has %d", size, need, len(mem))
	}
	if off.desc%uint64(unsafe.Alignof(zero)) != 0 || uintptr(unsafe.Pointer(&mem[0]))%8 != 0 {
		return fmt.Errorf("ring entries at offset %d are misaligned", off.desc)
	}
	base := unsafe.Pointer(&mem[0])
	r.producer = (*atomic.Uint32)(unsafe.Add(base, off.producer))
	r.consumer = (*atomic.Uint32)(unsafe.Add(base, off.consumer))
	r.flags = (*atomic.Uint32)(unsafe.Add(base, off.flags))
	r.entries = unsafe.Slice((*T)(unsafe.Add(base, off.desc)), size)
	r.mask = size - 1
	return nil
}

// Desc must have the layout of struct xdp_desc for the rx and tx rings.
var _ = [1]struct{}{}[unsafe.Sizeof(Desc{})-16]
