//go:build !amd64 && !arm64

package conntrack

// prefetch is a no-op where we have no prefetch instruction wired up.
func prefetch(addr uintptr) {}

// prefetchN is a no-op where we have no prefetch instruction wired up.
func prefetchN(addrs *uintptr, n int) {}
