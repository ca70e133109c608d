// Package testenv gates privileged tests and provides the fakes tests share.
//
// Privileged tests compile in every `go test ./...` and decide at run time:
// RequireRoot skips them when not root, unless CULVERT_TEST_PRIVILEGED is
// "require" (as in CI), in which case it fails them, so that a silent skip
// cannot hide a broken lab.
package testenv

import (
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/culvert-lb/culvert/internal/syncbuf"
)

// RequireRoot skips t when the process is not root, or fails it when
// CULVERT_TEST_PRIVILEGED=require.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("CULVERT_TEST_PRIVILEGED") == "require" {
		t.Fatal("test needs root and CULVERT_TEST_PRIVILEGED=require")
	}
	t.Skip("test needs root (network namespaces, XDP): skipped")
}

// Clock is a manual monotonic clock in nanoseconds. Its zero value reads 0.
// Safe for concurrent use.
type Clock struct{ ns atomic.Int64 }

// Now returns the current reading.
func (c *Clock) Now() int64 { return c.ns.Load() }

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

// Set sets the reading.
func (c *Clock) Set(ns int64) { c.ns.Store(ns) }

// Buffer is a bytes.Buffer safe for concurrent use: a child process's
// output or a logger's, written by other goroutines and read by the test.
// The zero value is an empty buffer.
type Buffer = syncbuf.Buffer
