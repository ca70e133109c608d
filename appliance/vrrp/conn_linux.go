package vrrp

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Conn is a VRRP socket on one interface: a raw IPv4 socket for protocol
// 112 bound to the device (SO_BINDTODEVICE), joined to 224.0.0.18 there
// (unless unicast peers are configured), sending with IP TTL 255 and
// without multicast loopback, and with the source address pinned to the
// configured primary address (IP_PKTINFO), since that address is in the
// checksum.
//
// Read (and Receive) may run in one goroutine while Send runs in another;
// Read is not safe for concurrent use with itself, Send is (it serialises
// on a mutex). Close unblocks a pending Read, which then returns
// net.ErrClosed. The socket lives in the network namespace of the thread
// that called Listen. The zero value is not usable: use Listen.
type Conn struct {
	f       *os.File
	rc      syscall.RawConn
	ifname  string
	ifindex int
	addr    netip.Addr
	closed  atomic.Bool

	// Read state, used by the one reader; readFn is built once so that a
	// Read does not allocate a closure.
	rbuf   []byte
	rn     int
	rerr   error
	readFn func(fd uintptr) bool

	mu      sync.Mutex // serialises Send; guards the fields below
	dsts    []*unix.SockaddrInet4
	dstAddr []netip.Addr
	oob     []byte // IP_PKTINFO: source address and interface
	sbuf    []byte
	wto     *unix.SockaddrInet4
	wn      int
	werr    error
	writeFn func(fd uintptr) bool
}

// Listen opens a Conn as cfg says. It needs CAP_NET_RAW.
func Listen(cfg ConnConfig) (*Conn, error) {
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("vrrp listen: %w", err)
	}
	ifi, err := net.InterfaceByName(cfg.Interface)
	if err != nil {
		return nil, fmt.Errorf("vrrp listen %s: %w", cfg.Interface, err)
	}
	addr, err := interfaceAddr(ifi, cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("vrrp listen %s: %w", cfg.Interface, err)
	}
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, IPProtocol)
	if err != nil {
		return nil, fmt.Errorf("vrrp listen %s: raw socket: %w", cfg.Interface, err)
	}
	if err := setupSocket(fd, ifi, addr, len(cfg.Peers) == 0); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("vrrp listen %s: %w", cfg.Interface, err)
	}
	f := os.NewFile(uintptr(fd), "vrrp:"+cfg.Interface)
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("vrrp listen %s: %w", cfg.Interface, err)
	}
	c := &Conn{f: f, rc: rc, ifname: cfg.Interface, ifindex: ifi.Index, addr: addr, sbuf: make([]byte, 0, maxAdvertSize)}
	dsts := cfg.Peers
	if len(dsts) == 0 {
		dsts = []netip.Addr{MulticastGroup}
	}
	for _, d := range dsts {
		c.dsts = append(c.dsts, &unix.SockaddrInet4{Addr: d.As4()})
		c.dstAddr = append(c.dstAddr, d)
	}
	c.oob = unix.PktInfo4(&unix.Inet4Pktinfo{Ifindex: int32(ifi.Index), Spec_dst: addr.As4()})
	c.readFn = func(fd uintptr) bool {
		c.rn, c.rerr = unix.Read(int(fd), c.rbuf)
		return c.rerr != unix.EAGAIN
	}
	c.writeFn = func(fd uintptr) bool {
		c.wn, c.werr = unix.SendmsgN(int(fd), c.sbuf, c.oob, c.wto, 0)
		return c.werr != unix.EAGAIN
	}
	return c, nil
}

// setupSocket applies the socket options of RFC 5798 section 5.1.1 to a
// raw protocol-112 socket.
func setupSocket(fd int, ifi *net.Interface, addr netip.Addr, multicast bool) error {
	if err := unix.BindToDevice(fd, ifi.Name); err != nil {
		return fmt.Errorf("SO_BINDTODEVICE: %w", err)
	}
	opts := []struct {
		name string
		opt  int
		val  int
	}{
		{"IP_TTL", unix.IP_TTL, TTL},
		{"IP_MULTICAST_TTL", unix.IP_MULTICAST_TTL, TTL},
		{"IP_MULTICAST_LOOP", unix.IP_MULTICAST_LOOP, 0},
		// Deliver only groups this socket joined, not every group some
		// other socket on the host joined.
		{"IP_MULTICAST_ALL", unix.IP_MULTICAST_ALL, 0},
	}
	for _, o := range opts {
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IP, o.opt, o.val); err != nil {
			return fmt.Errorf("%s: %w", o.name, err)
		}
	}
	mreq := &unix.IPMreqn{Address: addr.As4(), Ifindex: int32(ifi.Index)}
	if err := unix.SetsockoptIPMreqn(fd, unix.IPPROTO_IP, unix.IP_MULTICAST_IF, mreq); err != nil {
		return fmt.Errorf("IP_MULTICAST_IF: %w", err)
	}
	if multicast {
		join := &unix.IPMreqn{Multiaddr: MulticastGroup.As4(), Ifindex: int32(ifi.Index)}
		if err := unix.SetsockoptIPMreqn(fd, unix.IPPROTO_IP, unix.IP_ADD_MEMBERSHIP, join); err != nil {
			return fmt.Errorf("join %v: %w", MulticastGroup, err)
		}
	}
	return nil
}

// interfaceAddr returns want if it is an IPv4 address of ifi, or ifi's
// first IPv4 address when want is zero.
func interfaceAddr(ifi *net.Interface, want netip.Addr) (netip.Addr, error) {
	addrs, err := ifi.Addrs()
	if err != nil {
		return netip.Addr{}, fmt.Errorf("addresses: %w", err)
	}
	for _, a := range addrs {
		ipn, ok := a.(*net.IPNet)
		if !ok {
			continue
		}
		ip, ok := netip.AddrFromSlice(ipn.IP)
		if !ok || !ip.Unmap().Is4() {
			continue
		}
		ip = ip.Unmap()
		if !want.IsValid() || ip == want {
			return ip, nil
		}
	}
	if want.IsValid() {
		return netip.Addr{}, fmt.Errorf("addr %v is not an address of the interface", want)
	}
	return netip.Addr{}, errors.New("no IPv4 address on the interface")
}

// Addr returns the primary address advertisements are sent from.
func (c *Conn) Addr() netip.Addr { return c.addr }

// Read reads the next VRRP packet, IPv4 header included, into b and returns
// its length. A packet longer than b is cut short (and then fails the
// header's total length check); ReceiveBufferSize is enough for any
// advertisement. It does not allocate.
func (c *Conn) Read(b []byte) (int, error) {
	c.rbuf = b
	err := c.rc.Read(c.readFn)
	c.rbuf = nil
	if err == nil {
		err = c.rerr
	}
	if err != nil {
		if c.closed.Load() {
			return 0, net.ErrClosed
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return 0, err
		}
		return 0, fmt.Errorf("vrrp read %s: %w", c.ifname, err)
	}
	return c.rn, nil
}

// Receive reads the next packet into b and parses it: the advertisement
// and its sender's address (the IPv4 source). A packet that fails a check
// yields an error wrapping ErrIPHeader or one of Parse's errors (ErrTTL,
// ErrChecksum, ...), and the caller may read on; after Close the error is
// net.ErrClosed.
func (c *Conn) Receive(b []byte) (Advert, netip.Addr, error) {
	n, err := c.Read(b)
	if err != nil {
		return Advert{}, netip.Addr{}, err
	}
	return parsePacket(b[:n])
}

// SetReadDeadline makes a blocked or future Read return
// os.ErrDeadlineExceeded after t; the zero time clears it.
func (c *Conn) SetReadDeadline(t time.Time) error { return c.f.SetReadDeadline(t) }

// Send sends a to the multicast group, or to every unicast peer in turn,
// from Addr with TTL 255. A failure towards one peer does not stop the
// others; the first error is returned. It allocates nothing once a is
// valid.
func (c *Conn) Send(a *Advert) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	var first error
	for i, to := range c.dsts {
		b, err := a.appendMarshal(c.sbuf[:0], c.addr, c.dstAddr[i])
		if err != nil {
			return fmt.Errorf("vrrp send %s: %w", c.ifname, err)
		}
		c.sbuf, c.wto = b, to
		err = c.rc.Write(c.writeFn)
		if err == nil {
			err = c.werr
		}
		if err != nil && first == nil {
			if c.closed.Load() {
				return net.ErrClosed
			}
			first = fmt.Errorf("vrrp send %s to %v: %w", c.ifname, c.dstAddr[i], err)
		}
	}
	return first
}

// Close closes the socket, unblocking a pending Read. Closing twice is not
// an error.
func (c *Conn) Close() error {
	if c.closed.Swap(true) {
		return nil
	}
	return c.f.Close()
}
