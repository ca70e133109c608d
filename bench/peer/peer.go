package peer

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"

	"github.com/culvert-lb/culvert/bench/lab"
)

// ErrNotSupported is returned on systems without what a peer needs
// (network namespaces, XDP, sysfs).
var ErrNotSupported = errors.New("peer: not supported on this platform")

// NAPIThread is one NAPI instance of an interface that runs in a thread.
type NAPIThread struct {
	ID  uint32 // the NAPI id
	PID int    // the kernel thread (napi/<ifname>-<ID>)
}

// AnyCPU, as a CPU number, leaves a peer's threads unpinned.
const AnyCPU = -1

// Protocol is an IP protocol a Service runs over.
type Protocol uint8

// The protocols of a Service (IANA protocol numbers).
const (
	TCP Protocol = 6
	UDP Protocol = 17
)

// String returns "tcp" or "udp", or the number.
func (p Protocol) String() string {
	switch p {
	case TCP:
		return "tcp"
	case UDP:
		return "udp"
	}
	return fmt.Sprintf("proto-%d", uint8(p))
}

// Service is one port a peer balances: the VIP's port, which is also the
// backends' port (the lab's servers listen on the same ports everywhere).
// The zero value is no service.
type Service struct {
	Proto Protocol
	Port  uint16
}

// String returns the service as "80/tcp".
func (s Service) String() string { return fmt.Sprintf("%d/%v", s.Port, s.Proto) }

// validate reports what is wrong with s, if anything.
func (s Service) validate() error {
	if s.Proto != TCP && s.Proto != UDP {
		return fmt.Errorf("service %v: protocol is neither tcp nor udp", s)
	}
	if s.Port == 0 {
		return fmt.Errorf("service %v: port 0", s)
	}
	return nil
}

// labServices returns the services the lab's backends run that a balancer
// can spread: HTTP over TCP and the UDP echo.
func labServices(l *lab.Lab) []Service {
	o := l.Options()
	return []Service{{TCP, o.HTTPPort}, {UDP, o.UDPPort}}
}

// backendAddrs returns the address of every backend of l.
func backendAddrs(l *lab.Lab) []netip.Addr {
	var out []netip.Addr
	for _, b := range l.Backends {
		out = append(out, b.Addr)
	}
	return out
}

// segmentBackends returns the backends on the appliance's server segment,
// the ones a frame can reach by MAC alone (not those behind the router).
func segmentBackends(l *lab.Lab) []*lab.Host {
	var out []*lab.Host
	for _, b := range l.Backends {
		if b.LinkOn(lab.SegmentServer) != nil {
			out = append(out, b)
		}
	}
	return out
}

// applianceLinks returns the appliance's interfaces, the client side first;
// one when one-armed.
func applianceLinks(l *lab.Lab) []*lab.Link {
	if l.ClientSide == l.ServerSide || l.ClientSide.Name == l.ServerSide.Name {
		return []*lab.Link{l.ClientSide}
	}
	return []*lab.Link{l.ClientSide, l.ServerSide}
}

// mac6 converts a 6-byte hardware address, or reports what is wrong.
func mac6(what string, m net.HardwareAddr) ([6]byte, error) {
	if len(m) != 6 {
		return [6]byte{}, fmt.Errorf("%s: %q is not a 6-byte MAC address", what, m)
	}
	return [6]byte(m), nil
}

// tail returns the last n bytes of a command's output, trimmed, for error
// messages.
func tail(b []byte, n int) string {
	s := strings.TrimSpace(string(b))
	if len(s) > n {
		s = "..." + s[len(s)-n:]
	}
	return s
}
