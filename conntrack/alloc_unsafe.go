package conntrack

import "unsafe"

func init() {
	if unsafe.Sizeof(bucket{}) != cacheLine || unsafe.Sizeof(shard{}) != cacheLine ||
		unsafe.Sizeof(Entry[Key4]{}) != cacheLine {
		panic("conntrack: unexpected bucket, shard or entry size")
	}
}

// makeAligned returns a zeroed slice of n T whose first element starts on
// a cache line. T must contain no pointers: the memory is allocated as
// []uint64, which the garbage collector does not scan.
func makeAligned[T any](n int) []T {
	if n == 0 {
		return nil
	}
	size := int(unsafe.Sizeof(*new(T))) * n
	words := make([]uint64, (size+cacheLine)/8)
	p := unsafe.Pointer(&words[0])
	off := (cacheLine - uintptr(p)%cacheLine) % cacheLine
	return unsafe.Slice((*T)(unsafe.Add(p, off)), n)
}

// unsafeSizeofEntry returns the size of an Entry[K] in bytes.
func unsafeSizeofEntry[K Key]() uintptr { return unsafe.Sizeof(Entry[K]{}) }
