package nic

import (
	"runtime"
	"testing"

	"golang.org/x/sys/unix"
)

func TestPinThread(t *testing.T) {
	done := make(chan error)
	go func() {
		runtime.LockOSThread() // the pinned thread dies with the goroutine
		if err := PinThread(0); err != nil {
			done <- err
			return
		}
		var set unix.CPUSet
		if err := unix.SchedGetaffinity(0, &set); err != nil {
			done <- err
			return
		}
		if set.Count() != 1 || !set.IsSet(0) {
			t.Errorf("affinity after pin: %d CPUs, cpu0 %v", set.Count(), set.IsSet(0))
		}
		done <- nil
	}()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := PinThread(1 << 20); err == nil {
		t.Fatal("pinned to a CPU that does not exist")
	}
}
