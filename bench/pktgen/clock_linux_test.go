package pktgen

import (
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestNanotimeIsClockMonotonic: the probe's clock is CLOCK_MONOTONIC, as
// a receiver in another process reads it.
func TestNanotimeIsClockMonotonic(t *testing.T) {
	for range 5 {
		a := Nanotime()
		var ts unix.Timespec
		if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
			t.Fatal(err)
		}
		b := Nanotime()
		if m := ts.Nano(); m >= a && m <= b {
			return
		}
		time.Sleep(time.Millisecond) // descheduled between the readings: try again
	}
	t.Fatal("CLOCK_MONOTONIC never fell between two Nanotime readings")
}
