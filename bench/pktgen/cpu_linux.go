package pktgen

import (
	"time"

	"golang.org/x/sys/unix"
)

// threadCPU returns the user and system time of the calling OS thread
// (getrusage RUSAGE_THREAD), or 0 if the kernel will not say. The caller
// holds runtime.LockOSThread, or the figure mixes threads.
func threadCPU() time.Duration {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_THREAD, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
