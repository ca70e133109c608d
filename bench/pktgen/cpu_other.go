//go:build !linux

package pktgen

import "time"

// threadCPU returns 0: per-thread CPU time is read on Linux only.
func threadCPU() time.Duration { return 0 }
