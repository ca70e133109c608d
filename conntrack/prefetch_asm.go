//go:build amd64 || arm64

package conntrack

// prefetch hints the CPU to load the cache line holding addr into all
// cache levels (PREFETCHT0 on amd64, PRFM PLDL1KEEP on arm64). It never
// faults, whatever addr is.
//
//go:noescape
func prefetch(addr uintptr)

// prefetchN prefetches the n addresses at addrs[0:n]: one call per pass of
// a batch instead of one per address (a call into assembly cannot be
// inlined).
//
//go:noescape
func prefetchN(addrs *uintptr, n int)
