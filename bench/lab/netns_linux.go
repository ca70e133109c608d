//go:build linux

package lab

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// netnsDir is where named namespaces live, as with `ip netns add`.
const netnsDir = "/run/netns"

// createNamedNS makes a new network namespace and pins it at
// /run/netns/<name> with a bind mount, like `ip netns add`, then returns an
// open handle on it. The calling thread's namespace does not change: the
// work happens on a goroutine locked to a thread that is thrown away
// afterwards, because unshare(CLONE_NEWNET) cannot be undone on it.
func createNamedNS(name string) (netns.NsHandle, error) {
	if err := os.MkdirAll(netnsDir, 0o755); err != nil {
		return netns.None(), fmt.Errorf("netns %s: %w", name, err)
	}
	path := filepath.Join(netnsDir, name)
	f, err := os.OpenFile(path, os.O_RDONLY|os.O_CREATE|os.O_EXCL, 0)
	if err != nil {
		return netns.None(), fmt.Errorf("netns %s: %w", name, err)
	}
	f.Close()

	errc := make(chan error, 1)
	go func() {
		// No UnlockOSThread: the thread ends up in the new namespace, so
		// the runtime must retire it when this goroutine returns.
		runtime.LockOSThread()
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("unshare: %w", err)
			return
		}
		self := fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid())
		if err := unix.Mount(self, path, "none", unix.MS_BIND, ""); err != nil {
			errc <- fmt.Errorf("bind mount: %w", err)
			return
		}
		errc <- nil
	}()
	if err := <-errc; err != nil {
		os.Remove(path)
		return netns.None(), fmt.Errorf("netns %s: %w", name, err)
	}
	h, err := netns.GetFromPath(path)
	if err != nil {
		removeNamedNS(name)
		return netns.None(), fmt.Errorf("netns %s: %w", name, err)
	}
	return h, nil
}

// removeNamedNS unpins /run/netns/<name>, like `ip netns delete`. The
// namespace itself goes when nothing else holds it (open handles, sockets,
// processes inside).
func removeNamedNS(name string) error {
	path := filepath.Join(netnsDir, name)
	err := unix.Unmount(path, unix.MNT_DETACH)
	if err != nil && err != unix.EINVAL && err != unix.ENOENT {
		return fmt.Errorf("netns %s: unmount: %w", name, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("netns %s: %w", name, err)
	}
	return nil
}

// listNamedNS returns the names in /run/netns that start with prefix+"-".
func listNamedNS(prefix string) ([]string, error) {
	ents, err := os.ReadDir(netnsDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), prefix+"-") {
			names = append(names, e.Name())
		}
	}
	return names, nil
}

// inNS runs fn on a goroutine locked to an OS thread that has joined ns,
// and returns fn's result. The thread goes back to its namespace afterwards,
// or, if that fails, is retired with its goroutine so that no other
// goroutine ever runs in the wrong namespace. A panic in fn is re-raised on
// the caller's goroutine.
//
// Sockets made in fn keep ns after inNS returns; threads and processes
// started in fn start in ns (see Host.Command for a safer way to run
// commands).
func inNS(ns netns.NsHandle, fn func() error) error {
	if !ns.IsOpen() {
		return errors.New("lab: namespace handle is closed (lab down?)")
	}
	type result struct {
		err      error
		panicked bool
		val      any
	}
	done := make(chan result, 1)
	go func() {
		var r result
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			r.err = fmt.Errorf("lab: current netns: %w", err)
			done <- r
			return
		}
		defer orig.Close()
		if err := netns.Set(ns); err != nil {
			runtime.UnlockOSThread()
			r.err = fmt.Errorf("lab: setns: %w", err)
			done <- r
			return
		}
		func() {
			defer func() {
				if v := recover(); v != nil {
					r.panicked, r.val = true, v
				}
			}()
			r.err = fn()
		}()
		if err := netns.Set(orig); err == nil {
			runtime.UnlockOSThread()
		} else if r.err == nil {
			// Still locked: the thread dies with this goroutine.
			r.err = fmt.Errorf("lab: restore netns: %w", err)
		}
		done <- r
	}()
	r := <-done
	if r.panicked {
		panic(r.val)
	}
	return r.err
}
