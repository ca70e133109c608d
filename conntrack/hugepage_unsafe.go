//go:build linux

package conntrack

import (
	"syscall"
	"unsafe"
)

const hugePage = 2 << 20

// adviseHuge asks the kernel to back s with transparent huge pages
// (madvise MADV_HUGEPAGE), so that random lookups in a large table do not
// also miss the TLB on every access. With THP in "madvise" mode (a common
// default) the heap gets no huge pages otherwise. Errors are ignored: the
// advice is an optimization. Called once per array by New.
func adviseHuge[T any](s []T) {
	if len(s) == 0 {
		return
	}
	size := uintptr(len(s)) * unsafe.Sizeof(s[0])
	if size < hugePage {
		return
	}
	const pg = 4096
	start := uintptr(unsafe.Pointer(&s[0]))
	end := start + size
	a := (start + pg - 1) &^ (pg - 1)
	b := end &^ (pg - 1)
	if b <= a {
		return
	}
	_ = syscall.Madvise(unsafe.Slice((*byte)(unsafe.Add(unsafe.Pointer(&s[0]), a-start)), b-a), syscall.MADV_HUGEPAGE)
}
