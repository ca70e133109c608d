package pktgen

// Nanotime returns CLOCK_MONOTONIC in nanoseconds: the clock of the
// probe's transmit time. All network namespaces of a host share it (time
// namespaces aside), so a generator and a receiver in different
// namespaces, or processes, compare their readings directly. It allocates
// nothing and makes no system call on Linux (vDSO).
func Nanotime() int64 { return nanotime() }
