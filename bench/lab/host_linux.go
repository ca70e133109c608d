//go:build linux

package lab

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"

	"github.com/vishvananda/netlink"
)

// Do runs fn on an OS thread switched into the host's namespace and
// returns its error. fn runs on a goroutine of its own (locked to that
// thread), so it must not call t.FailNow and friends; a panic in fn is
// re-raised in the caller. The thread returns to its namespace afterwards,
// or is retired if it cannot.
//
// Sockets made in fn stay in the namespace for their whole life, so a
// listener made in Do may be served from any goroutine. Goroutines started
// by fn run in the root namespace, not the host's.
func (h *Host) Do(fn func() error) error {
	if err := inNS(h.NS, fn); err != nil {
		return fmt.Errorf("%s: %w", h.Name, err)
	}
	return nil
}

// Listen is net.Listen inside the host's namespace.
func (h *Host) Listen(network, addr string) (net.Listener, error) {
	var ln net.Listener
	err := h.Do(func() (err error) {
		ln, err = net.Listen(network, addr)
		return err
	})
	return ln, err
}

// ListenPacket is net.ListenPacket inside the host's namespace.
func (h *Host) ListenPacket(network, addr string) (net.PacketConn, error) {
	var pc net.PacketConn
	err := h.Do(func() (err error) {
		pc, err = net.ListenPacket(network, addr)
		return err
	})
	return pc, err
}

// Dial is net.Dial from inside the host's namespace.
func (h *Host) Dial(network, addr string) (net.Conn, error) {
	return h.DialContext(context.Background(), network, addr)
}

// DialContext is net.Dialer.DialContext from inside the host's namespace.
// Each call switches a thread into the namespace and back (a few
// microseconds); the connection then needs no switching. Addresses must be
// literal: name resolution would use the host's resolver configuration,
// which the lab does not set up.
func (h *Host) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	var c net.Conn
	err := h.Do(func() (err error) {
		var d net.Dialer
		c, err = d.DialContext(ctx, network, addr)
		return err
	})
	return c, err
}

// Sysctl reads /proc/sys/<key> in the host's namespace; key is dotted
// ("net.ipv4.ip_forward"). The value comes back without its newline.
func (h *Host) Sysctl(key string) (string, error) {
	var v string
	err := h.Do(func() error {
		b, err := os.ReadFile(sysctlPath(key))
		v = strings.TrimSpace(string(b))
		return err
	})
	return v, err
}

// SetSysctl writes /proc/sys/<key> in the host's namespace.
func (h *Host) SetSysctl(key, value string) error {
	return h.Do(func() error { return writeSysctl(key, value) })
}

// sysctlPath maps "net.ipv4.conf.all.rp_filter" to its /proc/sys file.
// Keys in the lab never hold interface names with dots.
func sysctlPath(key string) string {
	return filepath.Join("/proc/sys", strings.ReplaceAll(key, ".", "/"))
}

// writeSysctl writes a sysctl of the calling thread's namespace: the
// files under /proc/sys/net belong to the namespace of the thread that
// opens them.
func writeSysctl(key, value string) error {
	if err := os.WriteFile(sysctlPath(key), []byte(value), 0o644); err != nil {
		return fmt.Errorf("sysctl %s=%s: %w", key, value, err)
	}
	return nil
}

// XDPAttached reports whether an XDP program is attached to ifname in the
// host's namespace.
func (h *Host) XDPAttached(ifname string) (bool, error) {
	var on bool
	err := h.Do(func() error {
		l, err := netlink.LinkByName(ifname)
		if err != nil {
			return err
		}
		on = l.Attrs().Xdp != nil && l.Attrs().Xdp.Attached
		return nil
	})
	return on, err
}
