package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"

	"golang.org/x/sys/unix"
)

// NetNS is a named network namespace made for one test with `ip netns add`
// and deleted by t.Cleanup, even when the test fails. Its methods are safe
// for concurrent use. Interfaces inside it (veth ends) go away with it.
//
// Sockets belong to the namespace of the thread that creates them, so code
// that must open a socket or look up an interface inside the namespace runs
// in Do; sockets made there keep working from any goroutine afterwards.
// The zero value is not usable: use NewNetNS.
type NetNS struct {
	name string
}

var nsSeq atomic.Uint32

// NewNetNS creates a fresh network namespace with its loopback up. The test
// needs root: call RequireRoot first.
func NewNetNS(t testing.TB) *NetNS {
	t.Helper()
	ns := &NetNS{name: fmt.Sprintf("culvert-%d-%d", os.Getpid(), nsSeq.Add(1))}
	if out, err := exec.Command("ip", "netns", "add", ns.name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add %s: %v: %s", ns.name, err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", ns.name).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v: %s", ns.name, err, out)
		}
	})
	ns.MustExec(t, "ip", "link", "set", "lo", "up")
	return ns
}

// Name returns the namespace's name as `ip netns` knows it.
func (ns *NetNS) Name() string { return ns.name }

// Exec runs a command inside the namespace (`ip netns exec`) and returns its
// combined output. The error includes the output.
func (ns *NetNS) Exec(args ...string) (string, error) {
	cmd := exec.Command("ip", append([]string{"netns", "exec", ns.name}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("netns %s: %s: %w: %s", ns.name, strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// MustExec is Exec that fails the test on error.
func (ns *NetNS) MustExec(t testing.TB, args ...string) string {
	t.Helper()
	out, err := ns.Exec(args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// Do runs fn on an OS thread switched into the namespace and returns its
// error. The thread is switched back afterwards; if that fails the thread is
// left locked and so discarded when fn's goroutine ends, never reused.
func (ns *NetNS) Do(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := os.Open(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()))
		if err != nil {
			errc <- fmt.Errorf("open current netns: %w", err)
			return
		}
		defer orig.Close()
		target, err := os.Open("/run/netns/" + ns.name)
		if err != nil {
			errc <- fmt.Errorf("open netns %s: %w", ns.name, err)
			return
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("enter netns %s: %w", ns.name, err)
			return
		}
		ferr := fn()
		if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("leave netns %s: %w (after %v)", ns.name, err, ferr)
			return // thread stays locked: the runtime discards it
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// NewVeth creates a veth pair, end aName in a and end bName in b (a and b
// may be the same namespace), and sets both ends up. The pair disappears
// with its namespaces.
func NewVeth(t testing.TB, a *NetNS, aName string, b *NetNS, bName string) {
	t.Helper()
	out, err := exec.Command("ip", "-n", a.name, "link", "add", aName, "type", "veth",
		"peer", "name", bName, "netns", b.name).CombinedOutput()
	if err != nil {
		t.Fatalf("create veth %s/%s: %v: %s", aName, bName, err, out)
	}
	a.MustExec(t, "ip", "link", "set", aName, "up")
	b.MustExec(t, "ip", "link", "set", bName, "up")
}
