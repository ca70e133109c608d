package lab

import (
	"context"
	"testing"
	"time"

	"github.com/culvert-lb/culvert/internal/testenv"
)

// UpForTest brings a lab up for a test: it skips t when not root (or fails
// it when CULVERT_TEST_PRIVILEGED=require), bounds Up by 30 s, fails t if
// Up fails, and registers Down with t.Cleanup, so the lab goes away even
// when the test fails midway or panics.
func UpForTest(t testing.TB, opt Options) *Lab {
	t.Helper()
	testenv.RequireRoot(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	l, err := Up(ctx, opt)
	if err != nil {
		t.Fatalf("lab up: %v", err)
	}
	t.Cleanup(func() {
		if err := l.Down(); err != nil {
			t.Errorf("lab down: %v", err)
		}
	})
	return l
}
