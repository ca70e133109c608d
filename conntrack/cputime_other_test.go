//go:build !linux

package conntrack

import "time"

func threadCPU() (time.Duration, bool) { return 0, false }
