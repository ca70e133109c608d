package nic

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// PinThread restricts the calling OS thread to one CPU. Call it from a
// goroutine that holds runtime.LockOSThread, or the pin outlives the
// goroutine on a thread the scheduler reuses.
func PinThread(cpu int) error {
	var set unix.CPUSet
	set.Zero()
	set.Set(cpu)
	if err := unix.SchedSetaffinity(0, &set); err != nil {
		return fmt.Errorf("pin thread to cpu %d: %w", cpu, err)
	}
	return nil
}
