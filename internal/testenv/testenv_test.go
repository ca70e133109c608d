package testenv

import (
	"testing"
	"time"
)

func TestClock(t *testing.T) {
	var c Clock
	c.Advance(3 * time.Second)
	if c.Now() != int64(3*time.Second) {
		t.Fatalf("Now = %d", c.Now())
	}
	c.Set(5)
	if c.Now() != 5 {
		t.Fatalf("Now after Set = %d", c.Now())
	}
}
