//go:build !linux

package conntrack

// adviseHuge is a no-op off Linux.
func adviseHuge[T any](s []T) {}
