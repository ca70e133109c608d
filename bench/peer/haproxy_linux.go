package peer

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/culvert-lb/culvert/bench/lab"
	"github.com/culvert-lb/culvert/internal/syncbuf"
)

// haproxyStartTimeout bounds how long StartHAProxy waits for the listener.
const haproxyStartTimeout = 10 * time.Second

// HAProxy is Debian's haproxy as an L4 (TCP mode) balancer in the
// appliance's namespace: one thread, pinned with taskset, round-robin over
// the backends, no logging, with its configuration and pid file in a
// temporary directory of its own. It runs in the foreground (-db), a child
// of this process.
//
// haproxy binds the VIP, so the VIP must be a local address: StartHAProxy
// adds it to the appliance's loopback (/32) and Stop removes it. That is
// what a proxy on a real appliance does; ip_nonlocal_bind would let it
// bind but not receive, since the kernel delivers locally only to its own
// addresses. The appliance answers no ARP for it either way: the router
// routes the VIP range to the appliance's address.
//
// Its methods are safe for concurrent use. There is no useful zero value:
// use StartHAProxy.
type HAProxy struct {
	host    *lab.Host
	cmd     *exec.Cmd
	dir     string
	config  string
	lo      netip.Prefix // added to lo by Start; zero if it was there before
	out     *syncbuf.Buffer
	done    chan struct{} // closed when the process has exited
	waitErr error

	mu      sync.Mutex
	stopped bool
	stopErr error
}

// StartHAProxy writes the configuration for lab l, starts haproxy in the
// appliance's namespace and waits until it accepts connections. A missing
// haproxy binary is reported as an error wrapping exec.ErrNotFound.
func StartHAProxy(l *lab.Lab, cfg HAProxyConfig) (*HAProxy, error) {
	o := l.Options()
	if !cfg.Listen.IsValid() {
		cfg.Listen = netip.AddrPortFrom(l.VIP, o.HTTPPort)
	}
	if len(cfg.Backends) == 0 {
		for _, a := range backendAddrs(l) {
			cfg.Backends = append(cfg.Backends, netip.AddrPortFrom(a, o.HTTPPort))
		}
	}
	if cfg.MaxConn == 0 {
		var lim unix.Rlimit
		if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
			return nil, fmt.Errorf("haproxy: open-file limit: %w", err)
		}
		cfg.MaxConn = maxConnFor(lim.Max)
	}
	text, err := cfg.Text()
	if err != nil {
		return nil, err
	}
	bin := cfg.Binary
	if bin == "" {
		bin = "haproxy"
	}
	if bin, err = exec.LookPath(bin); err != nil {
		return nil, fmt.Errorf("haproxy: %w (Debian: apt-get install haproxy)", err)
	}
	h := &HAProxy{host: l.Appliance, config: text, out: new(syncbuf.Buffer), done: make(chan struct{})}
	if h.dir, err = os.MkdirTemp("", "culvert-haproxy-"); err != nil {
		return nil, fmt.Errorf("haproxy: %w", err)
	}
	cfgPath := filepath.Join(h.dir, "haproxy.cfg")
	if err := os.WriteFile(cfgPath, []byte(text), 0o644); err != nil {
		h.cleanup()
		return nil, fmt.Errorf("haproxy: %w", err)
	}
	addr := netip.PrefixFrom(cfg.Listen.Addr(), 32)
	added, err := addLocalAddr(l.Appliance, addr)
	if err != nil {
		h.cleanup()
		return nil, fmt.Errorf("haproxy: %w", err)
	}
	if added {
		h.lo = addr
	}
	args := []string{bin, "-db", "-f", cfgPath}
	if cfg.CPU != AnyCPU {
		args = append([]string{"taskset", "-c", strconv.Itoa(cfg.CPU)}, args...)
	}
	h.cmd = l.Appliance.Command(args[0], args[1:]...)
	h.cmd.Stdout, h.cmd.Stderr = h.out, h.out
	h.cmd.Dir = h.dir
	if err := h.cmd.Start(); err != nil {
		h.cleanup()
		return nil, fmt.Errorf("haproxy: start: %w", err)
	}
	go func() {
		h.waitErr = h.cmd.Wait()
		close(h.done)
	}()
	pid := strconv.Itoa(h.cmd.Process.Pid) + "\n"
	if err := os.WriteFile(filepath.Join(h.dir, "haproxy.pid"), []byte(pid), 0o644); err != nil {
		h.Stop()
		return nil, fmt.Errorf("haproxy: %w", err)
	}
	if err := h.waitListening(cfg.Listen); err != nil {
		h.Stop()
		return nil, fmt.Errorf("haproxy: %w: %s", err, tail(h.out.Bytes(), 800))
	}
	return h, nil
}

// waitListening waits until a connection to addr from the appliance's
// namespace succeeds, the process exits, or haproxyStartTimeout passes.
func (h *HAProxy) waitListening(addr netip.AddrPort) error {
	deadline := time.Now().Add(haproxyStartTimeout)
	for {
		select {
		case <-h.done:
			return fmt.Errorf("exited at start: %v", h.waitErr)
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		c, err := h.host.DialContext(ctx, "tcp4", addr.String())
		cancel()
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not listening on %v after %v: %w", addr, haproxyStartTimeout, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Pid returns haproxy's process id (the same as in Dir()/haproxy.pid).
func (h *HAProxy) Pid() int { return h.cmd.Process.Pid }

// Dir returns the temporary directory of the configuration and pid file.
// Stop removes it.
func (h *HAProxy) Dir() string { return h.dir }

// Config returns the configuration haproxy runs with.
func (h *HAProxy) Config() string { return h.config }

// Output returns what haproxy has written to stdout and stderr.
func (h *HAProxy) Output() string { return string(h.out.Bytes()) }

// Stop ends haproxy (SIGTERM, a hard stop; SIGKILL after 5 s), removes the
// VIP from the loopback if Start added it, and the temporary directory.
// It reports an exit other than by the signal. Later calls return the
// first result.
func (h *HAProxy) Stop() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.stopped {
		return h.stopErr
	}
	h.stopped = true
	var errs []error
	if h.cmd != nil && h.cmd.Process != nil {
		select {
		case <-h.done:
			errs = append(errs, fmt.Errorf("haproxy exited before Stop: %v: %s", h.waitErr, tail(h.out.Bytes(), 800)))
		default:
			h.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-h.done:
			case <-time.After(5 * time.Second):
				h.cmd.Process.Kill()
				<-h.done
				errs = append(errs, errors.New("haproxy did not stop on SIGTERM within 5 s; killed"))
			}
			if err := exitBySignal(h.waitErr, syscall.SIGTERM); err != nil {
				errs = append(errs, fmt.Errorf("haproxy: %w: %s", err, tail(h.out.Bytes(), 800)))
			}
		}
	}
	if err := h.cleanup(); err != nil {
		errs = append(errs, err)
	}
	h.stopErr = errors.Join(errs...)
	return h.stopErr
}

// cleanup removes the loopback address and the directory.
func (h *HAProxy) cleanup() error {
	var errs []error
	if h.lo.IsValid() {
		if err := delLocalAddr(h.host, h.lo); err != nil {
			errs = append(errs, fmt.Errorf("haproxy: remove %v from lo: %w", h.lo, err))
		}
		h.lo = netip.Prefix{}
	}
	if h.dir != "" {
		errs = append(errs, os.RemoveAll(h.dir))
	}
	return errors.Join(errs...)
}

// addLocalAddr adds p to h's loopback; it reports false if it was there.
func addLocalAddr(h *lab.Host, p netip.Prefix) (added bool, err error) {
	err = onLoopback(h, p, func(lo netlink.Link, a *netlink.Addr) error {
		err := netlink.AddrAdd(lo, a)
		if errors.Is(err, unix.EEXIST) {
			return nil
		}
		added = err == nil
		return err
	})
	if err != nil {
		return false, fmt.Errorf("add %v to lo: %w", p, err)
	}
	return added, nil
}

// delLocalAddr removes p from h's loopback.
func delLocalAddr(h *lab.Host, p netip.Prefix) error {
	return onLoopback(h, p, netlink.AddrDel)
}

// onLoopback calls fn with h's loopback and p, in h's namespace.
func onLoopback(h *lab.Host, p netip.Prefix, fn func(lo netlink.Link, a *netlink.Addr) error) error {
	return h.Do(func() error {
		lo, err := netlink.LinkByName("lo")
		if err != nil {
			return err
		}
		a, err := netlink.ParseAddr(p.String())
		if err != nil {
			return err
		}
		return fn(lo, a)
	})
}
