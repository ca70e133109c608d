package packettest

import (
	"fmt"
	"strings"
	"testing"
)

// recorder is a fake testing.TB that records what checkers report. The
// embedded TB is nil, so a checker calling anything not overridden here
// (Fatal, Skip, Cleanup, ...) panics and fails the test loudly.
type recorder struct {
	testing.TB
	errs []string
	logs []string
}

func (r *recorder) Helper()      {}
func (r *recorder) Failed() bool { return len(r.errs) > 0 }

func (r *recorder) Errorf(format string, args ...any) {
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}

func (r *recorder) Error(args ...any) { r.errs = append(r.errs, fmt.Sprint(args...)) }

func (r *recorder) Logf(format string, args ...any) {
	r.logs = append(r.logs, fmt.Sprintf(format, args...))
}

// run checks frame with checkers against a fresh recorder.
func run(frame []byte, checkers ...Checker) *recorder {
	r := &recorder{}
	Check(r, frame, checkers...)
	return r
}

// wantErrors fails t unless r recorded exactly len(want) errors, the i-th
// containing want[i].
func (r *recorder) wantErrors(t *testing.T, want ...string) {
	t.Helper()
	if len(r.errs) != len(want) {
		t.Fatalf("got %d errors, want %d:\n%s", len(r.errs), len(want), strings.Join(r.errs, "\n"))
	}
	for i, w := range want {
		if !strings.Contains(r.errs[i], w) {
			t.Errorf("error %d = %q, want it to contain %q", i, r.errs[i], w)
		}
	}
}
