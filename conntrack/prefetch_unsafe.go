package conntrack

import (
	"sync/atomic"
	"unsafe"
)

// addrOf returns p as an address for prefetching. The address is only
// ever handed to a prefetch instruction, never turned back into a pointer.
func addrOf[T any](p *T) uintptr { return uintptr(unsafe.Pointer(p)) }

// entryLines writes into dst the addresses of the cache lines a lookup of
// an entry touches (its state word and the looked-up key) and returns how
// many it wrote: one when they share a line (Entry[Key4] is exactly one
// aligned line), else up to three.
func entryLines[K Key](dst []uintptr, w *atomic.Uint64, k *K) int {
	a := uintptr(unsafe.Pointer(w))
	ks := uintptr(unsafe.Pointer(k))
	ke := ks + unsafe.Sizeof(*k) - 1
	dst[0] = a
	n := 1
	if ks/cacheLine != a/cacheLine {
		dst[n] = ks
		n++
	}
	if ke/cacheLine != ks/cacheLine {
		dst[n] = ke
		n++
	}
	return n
}
