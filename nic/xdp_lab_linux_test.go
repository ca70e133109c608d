package nic

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"os"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"

	"github.com/culvert-lb/culvert/internal/packettest"
	"github.com/culvert-lb/culvert/internal/testenv"
)

// The AF_XDP lab: two fresh network namespaces joined by a veth pair.
//
//	ns "xsk":  xsk0 198.18.0.1/30, XDP program (native mode) redirecting
//	           every frame of queue 0 into an XSKMAP, the socket under test
//	ns "peer": peer0 198.18.0.2/30, raw and UDP sockets playing the client
//
// The redirect program stands in for the steering program (steer*.go),
// which is written and tested separately.

const (
	labIface     = "xsk0"
	labPeerIface = "peer0"
	labPort      = 9 // UDP port the reflector answers
)

var (
	labAddr     = netip.MustParseAddr("198.18.0.1")
	labPeerAddr = netip.MustParseAddr("198.18.0.2")
)

type xskLab struct {
	t             testing.TB
	ns, peer      *testenv.NetNS
	mac, peerMAC  [6]byte
	peerIndex     int
	xsks          *ebpf.Map
	rawFD         int // AF_PACKET socket on peer0, for sending frames
	attachedQueue int
}

func newXSKLab(t testing.TB) *xskLab {
	t.Helper()
	testenv.RequireRoot(t)
	l := &xskLab{t: t, ns: testenv.NewNetNS(t), peer: testenv.NewNetNS(t), rawFD: -1}
	// No IPv6: its autoconfiguration would send frames at odd times into
	// tests that count or time frames.
	for _, ns := range []*testenv.NetNS{l.ns, l.peer} {
		err := ns.Do(func() error {
			for _, k := range []string{"all", "default"} {
				// /proc/sys/net shows the namespace of the thread that opens it.
				if err := os.WriteFile("/proc/sys/net/ipv6/conf/"+k+"/disable_ipv6", []byte("1"), 0o644); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatalf("disable ipv6 in %s: %v", ns.Name(), err)
		}
	}
	testenv.NewVeth(t, l.ns, labIface, l.peer, labPeerIface)
	l.ns.MustExec(t, "ip", "addr", "add", labAddr.String()+"/30", "dev", labIface)
	l.peer.MustExec(t, "ip", "addr", "add", labPeerAddr.String()+"/30", "dev", labPeerIface)

	var err error
	l.xsks, err = ebpf.NewMap(&ebpf.MapSpec{Name: "lab_xsks", Type: ebpf.XSKMap, KeySize: 4, ValueSize: 4, MaxEntries: 1})
	if err != nil {
		t.Fatalf("xskmap: %v", err)
	}
	t.Cleanup(func() { l.xsks.Close() })
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Name: "lab_redirect",
		Type: ebpf.XDP,
		Instructions: asm.Instructions{
			// return bpf_redirect_map(&xsks, ctx->rx_queue_index, XDP_PASS)
			asm.LoadMem(asm.R2, asm.R1, 16, asm.Word),
			asm.LoadMapPtr(asm.R1, l.xsks.FD()),
			asm.Mov.Imm(asm.R3, 2),
			asm.FnRedirectMap.Call(),
			asm.Return(),
		},
		License: "Apache-2.0",
	})
	if err != nil {
		t.Fatalf("load redirect program: %v", err)
	}
	t.Cleanup(func() { prog.Close() })

	err = l.ns.Do(func() error {
		ifc, err := net.InterfaceByName(labIface)
		if err != nil {
			return err
		}
		copy(l.mac[:], ifc.HardwareAddr)
		lk, err := link.AttachXDP(link.XDPOptions{Program: prog, Interface: ifc.Index, Flags: link.XDPDriverMode})
		if err != nil {
			return fmt.Errorf("attach xdp (native) to %s: %w", labIface, err)
		}
		t.Cleanup(func() { lk.Close() })
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	err = l.peer.Do(func() error {
		ifc, err := net.InterfaceByName(labPeerIface)
		if err != nil {
			return err
		}
		copy(l.peerMAC[:], ifc.HardwareAddr)
		l.peerIndex = ifc.Index
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0) // protocol 0: send only
		if err != nil {
			return err
		}
		l.rawFD = fd
		return unix.Bind(fd, &unix.SockaddrLinklayer{Ifindex: ifc.Index})
	})
	if l.rawFD >= 0 {
		t.Cleanup(func() { unix.Close(l.rawFD) })
	}
	if err != nil {
		t.Fatalf("peer raw socket: %v", err)
	}
	return l
}

// open opens the queue under test inside the lab namespace and registers
// it in the XSKMAP.
func (l *xskLab) open(cfg XDPConfig) *XDP {
	l.t.Helper()
	cfg.Iface = labIface
	var x *XDP
	err := l.ns.Do(func() error {
		var err error
		x, err = OpenXDP(cfg)
		return err
	})
	if err != nil {
		l.t.Fatal(err)
	}
	l.t.Cleanup(func() {
		if err := x.Close(); err != nil {
			l.t.Errorf("close: %v", err)
		}
	})
	l.register(x.FD())
	return x
}

func (l *xskLab) register(fd int) {
	l.t.Helper()
	if err := l.xsks.Put(uint32(0), uint32(fd)); err != nil {
		l.t.Fatalf("xskmap put: %v", err)
	}
}

// frame builds UDP datagram i from the peer (srcPort) to the lab's port.
func (l *xskLab) frame(srcPort uint16, i int, size int) []byte {
	src := packettest.Endpoint{MAC: l.peerMAC, Addr: netip.AddrPortFrom(labPeerAddr, srcPort)}
	dst := packettest.Endpoint{MAC: l.mac, Addr: netip.AddrPortFrom(labAddr, labPort)}
	payload := fmt.Appendf(nil, "culvert %06d", i)
	if size > 0 {
		return packettest.UDP4(src, dst, payload, packettest.WithPayloadLen(size-42))
	}
	return packettest.UDP4(src, dst, payload)
}

// send transmits a frame from the peer's end of the veth.
func (l *xskLab) send(frame []byte) error {
	return unix.Sendto(l.rawFD, frame, 0, &unix.SockaddrLinklayer{Ifindex: l.peerIndex})
}

// peerUDP opens a UDP socket on the peer, where reflected datagrams land.
func (l *xskLab) peerUDP(port uint16) *net.UDPConn {
	l.t.Helper()
	var c *net.UDPConn
	err := l.peer.Do(func() error {
		var err error
		c, err = net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(labPeerAddr, port)))
		if err != nil {
			return err
		}
		raw, err := c.SyscallConn()
		if err != nil {
			return err
		}
		raw.Control(func(fd uintptr) {
			err = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 4<<20)
		})
		return err
	})
	if err != nil {
		l.t.Fatal(err)
	}
	l.t.Cleanup(func() { c.Close() })
	return c
}

// isLabUDP reports whether f is an IPv4 UDP datagram to the lab's port.
func isLabUDP(f []byte) bool {
	if len(f) < 42 || binary.BigEndian.Uint16(f[12:]) != 0x0800 || f[23] != 17 {
		return false
	}
	ihl := int(f[14]&0x0f) * 4
	return len(f) >= 14+ihl+8 && binary.BigEndian.Uint16(f[14+ihl+2:]) == labPort
}

// reflectFrame turns a datagram around in place: Ethernet addresses, IPv4
// addresses and UDP ports swapped. The checksums cover the swapped fields
// as sums, so they stay valid.
func reflectFrame(f []byte) {
	var mac [6]byte
	copy(mac[:], f[0:6])
	copy(f[0:6], f[6:12])
	copy(f[6:12], mac[:])
	var ip [4]byte
	copy(ip[:], f[26:30])
	copy(f[26:30], f[30:34])
	copy(f[30:34], ip[:])
	l4 := 14 + int(f[14]&0x0f)*4
	p := binary.BigEndian.Uint16(f[l4:])
	copy(f[l4:l4+2], f[l4+2:l4+4])
	binary.BigEndian.PutUint16(f[l4+2:], p)
}

// reflector is a worker loop on a Queue: it reflects lab datagrams and
// releases everything else (IPv6 neighbour discovery and the like), and
// shifts every other reflected frame back by shift bytes into its headroom
// before sending it, as encapsulation does. It keeps what Transmit
// refused for the next round.
type reflector struct {
	q         Queue
	batch     []Desc
	out       []Desc
	other     []Desc
	shift     int
	reflected int
	n         int
}

func newReflector(q Queue, shift int) *reflector {
	return &reflector{q: q, batch: make([]Desc, 64), out: make([]Desc, 0, 4096), other: make([]Desc, 0, 64), shift: shift}
}

// step runs one round and returns the number of frames received.
func (r *reflector) step() int {
	n := r.q.Receive(r.batch)
	umem := r.q.UMEM()
	r.other = r.other[:0]
	for _, d := range r.batch[:n] {
		f := umem[d.Addr : d.Addr+uint64(d.Len)]
		if !isLabUDP(f) {
			r.other = append(r.other, d)
			continue
		}
		reflectFrame(f)
		if r.shift > 0 && r.n%2 == 1 {
			copy(umem[d.Addr-uint64(r.shift):], f)
			d.Addr -= uint64(r.shift)
		}
		r.n++
		r.out = append(r.out, d)
	}
	r.q.Release(r.other)
	if len(r.out) > 0 {
		t := r.q.Transmit(r.out)
		r.reflected += t
		r.out = r.out[:copy(r.out, r.out[t:])]
	}
	return n
}
