package pktgen

import (
	_ "unsafe" // for go:linkname
)

// nanotime is the runtime's monotonic clock: clock_gettime(CLOCK_MONOTONIC)
// through the vDSO on Linux, about 20 ns and no system call. The runtime
// keeps this linkname for outside users (go.dev/issue/67401). time.Now's
// monotonic reading counts from process start instead, so it cannot be
// compared across processes.
//
//go:linkname nanotime runtime.nanotime
func nanotime() int64
