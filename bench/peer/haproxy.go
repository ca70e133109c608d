package peer

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"
)

// HAProxyConfig describes the HAProxy peer. The zero value balances the
// lab's VIP, HTTP port, round-robin over every backend's HTTP port, with
// haproxy pinned to CPU 0.
type HAProxyConfig struct {
	// Listen is where haproxy accepts connections; zero: the lab's VIP and
	// HTTP port. Its address is added to the appliance's loopback for the
	// run (see HAProxy).
	Listen netip.AddrPort
	// Backends are the servers; empty: every backend at the lab's HTTP
	// port.
	Backends []netip.AddrPort
	// CPU is the CPU haproxy runs on (taskset -c); AnyCPU leaves it
	// unpinned.
	CPU int
	// MaxConn bounds concurrent connections (global and frontend maxconn);
	// 0 takes as many as the process's open-file limit allows, since
	// haproxy needs two descriptors per proxied connection and refuses to
	// start when the limit is short.
	MaxConn int
	// Binary is the haproxy executable; empty: "haproxy" from PATH.
	Binary string
}

// HAProxy timeouts: long enough for any lab transfer to go idle and come
// back, short enough that a stuck connection does not outlive a run.
const (
	haproxyConnectTimeout = 5 * time.Second
	haproxyIdleTimeout    = 30 * time.Second
)

// haproxyFDReserve is the descriptors haproxy keeps for itself (listeners,
// pollers, pipes) when MaxConn is derived from the open-file limit.
const haproxyFDReserve = 100

// maxConnFor returns the MaxConn that fits in an open-file limit.
func maxConnFor(nofile uint64) int {
	if nofile <= 2*haproxyFDReserve {
		return 1
	}
	return int(min((nofile-haproxyFDReserve)/2, 1<<20))
}

// Text returns the haproxy configuration for c, with defaults already
// filled in (Listen, Backends and MaxConn set): TCP mode, one thread, no
// logging, round-robin, no health checks (the lab's backends are up, and a
// check would add traffic to what is measured).
func (c HAProxyConfig) Text() (string, error) {
	var errs []error
	if !c.Listen.IsValid() || !c.Listen.Addr().Is4() || c.Listen.Port() == 0 {
		errs = append(errs, fmt.Errorf("listen %v: want an IPv4 address and port", c.Listen))
	}
	if len(c.Backends) == 0 {
		errs = append(errs, errors.New("no backends"))
	}
	for i, b := range c.Backends {
		if !b.IsValid() || !b.Addr().Is4() || b.Port() == 0 {
			errs = append(errs, fmt.Errorf("backends[%d] %v: want an IPv4 address and port", i, b))
		}
	}
	if c.MaxConn <= 0 {
		errs = append(errs, fmt.Errorf("maxconn %d: want > 0", c.MaxConn))
	}
	if err := errors.Join(errs...); err != nil {
		return "", fmt.Errorf("haproxy: %w", err)
	}
	ms := func(d time.Duration) string { return fmt.Sprintf("%dms", d.Milliseconds()) }
	var b strings.Builder
	b.WriteString("# culvert bench peer: haproxy as an L4 balancer\n")
	b.WriteString("global\n")
	b.WriteString("\tnbthread 1\n")
	fmt.Fprintf(&b, "\tmaxconn %d\n", c.MaxConn)
	b.WriteString("defaults\n")
	b.WriteString("\tmode tcp\n")
	fmt.Fprintf(&b, "\tmaxconn %d\n", c.MaxConn)
	fmt.Fprintf(&b, "\ttimeout connect %s\n", ms(haproxyConnectTimeout))
	fmt.Fprintf(&b, "\ttimeout client %s\n", ms(haproxyIdleTimeout))
	fmt.Fprintf(&b, "\ttimeout server %s\n", ms(haproxyIdleTimeout))
	b.WriteString("frontend vip\n")
	fmt.Fprintf(&b, "\tbind %v\n", c.Listen)
	b.WriteString("\tdefault_backend servers\n")
	b.WriteString("backend servers\n")
	b.WriteString("\tbalance roundrobin\n")
	for i, s := range c.Backends {
		fmt.Fprintf(&b, "\tserver s%d %v\n", i, s)
	}
	return b.String(), nil
}
