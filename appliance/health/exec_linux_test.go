package health

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestExecKillsGroup: a timed-out exec check takes its children with it.
func TestExecKillsGroup(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "pid")
	spec := Spec{Kind: KindExec, Timeout: 200 * time.Millisecond,
		Command: []string{"sh", "-c", `sleep 30 & echo $! > "$0"; wait`, pidFile}}
	c := New(Options{})
	err := c.Probe(context.Background(), Target{Addr: mustAddr(t, "127.0.0.1:80"), Spec: spec})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Probe: %v, want deadline exceeded", err)
	}
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	for range 100 {
		if !alive(pid) {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	syscall.Kill(pid, syscall.SIGKILL)
	t.Fatalf("child %d of the check survived its timeout", pid)
}

// alive reports whether pid is a live (not zombie) process.
func alive(pid int) bool {
	if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
		return false
	}
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	// pid (comm) S ...: the state follows the last ')'.
	s := string(stat)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}
