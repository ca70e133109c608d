//go:build linux

package lab

import (
	"fmt"
	"net"
	"net/netip"
	"sync"

	"golang.org/x/sys/unix"
)

// ServeUDPEcho starts a UDP echo server in the host's namespace on addr
// (as for net.ListenPacket "udp4", e.g. ":7"): each datagram is answered
// with "<name>: <payload>", the payload cut to fit one datagram.
//
// The answer leaves from the address the request was sent to (IP_PKTINFO),
// not from the one the route would pick, so a DSR backend answers for the
// VIP on its loopback, as the client expects. Lab.Down stops it too.
func (h *Host) ServeUDPEcho(addr, name string) (stop func(), err error) {
	pc, err := h.ListenPacket("udp4", addr)
	if err != nil {
		return nil, fmt.Errorf("%s: udp echo %s: %w", h.Name, addr, err)
	}
	conn := pc.(*net.UDPConn)
	raw, err := conn.SyscallConn()
	if err == nil {
		cerr := raw.Control(func(fd uintptr) {
			err = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_PKTINFO, 1)
		})
		if err == nil {
			err = cerr
		}
	}
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("%s: udp echo %s: IP_PKTINFO: %w", h.Name, addr, err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		echo(conn, name)
	}()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			conn.Close()
			<-done
		})
	}
	h.track(stop)
	return stop, nil
}

// echo answers datagrams on conn until it is closed.
func echo(conn *net.UDPConn, name string) {
	const maxPayload = 65507 // IPv4: 65535 - 20 - 8
	prefix := name + ": "
	in := make([]byte, maxPayload)
	out := make([]byte, 0, maxPayload)
	oob := make([]byte, unix.CmsgSpace(unix.SizeofInet4Pktinfo))
	for {
		n, oobn, _, from, err := conn.ReadMsgUDPAddrPort(in, oob)
		if err != nil {
			return // closed; unconnected UDP sockets report no other errors worth a retry
		}
		out = append(append(out[:0], prefix...), in[:min(n, maxPayload-len(prefix))]...)
		var reply []byte
		if dst, ok := pktinfoDst(oob[:oobn]); ok {
			reply = unix.PktInfo4(&unix.Inet4Pktinfo{Spec_dst: dst.As4()})
		}
		conn.WriteMsgUDPAddrPort(out, reply, from)
	}
}

// pktinfoDst returns the destination address of a datagram from its
// IP_PKTINFO control message.
func pktinfoDst(oob []byte) (netip.Addr, bool) {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return netip.Addr{}, false
	}
	for _, m := range msgs {
		// struct in_pktinfo: int ipi_ifindex; in_addr ipi_spec_dst; in_addr ipi_addr.
		if m.Header.Level == unix.IPPROTO_IP && m.Header.Type == unix.IP_PKTINFO && len(m.Data) >= unix.SizeofInet4Pktinfo {
			return netip.AddrFrom4([4]byte(m.Data[8:12])), true
		}
	}
	return netip.Addr{}, false
}
