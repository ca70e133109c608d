//go:build linux

package nic

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/culvert-lb/culvert/internal/packettest"
	"github.com/culvert-lb/culvert/internal/testenv"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// These tests attach the programs to a real veth pair between two network
// namespaces they create: A (198.18.0.1/24, the appliance or backend,
// where the program runs) and B (198.18.0.2/24, the peer sending).

const (
	vethA = "culv0"
	vethB = "culv1"
)

var (
	vethAddrA = netip.MustParsePrefix("198.18.0.1/24")
	vethAddrB = netip.MustParsePrefix("198.18.0.2/24")
)

type vethLab struct {
	a, b       *testenv.NetNS
	macA, macB net.HardwareAddr
}

func newVethLab(t *testing.T) *vethLab {
	t.Helper()
	testenv.RequireRoot(t)
	l := &vethLab{a: testenv.NewNetNS(t), b: testenv.NewNetNS(t)}
	testenv.NewVeth(t, l.a, vethA, l.b, vethB)
	l.a.MustExec(t, "ip", "addr", "add", vethAddrA.String(), "dev", vethA)
	l.b.MustExec(t, "ip", "addr", "add", vethAddrB.String(), "dev", vethB)
	mac := func(ns *testenv.NetNS, name string) (hw net.HardwareAddr) {
		if err := ns.Do(func() error {
			ifi, err := net.InterfaceByName(name)
			if err == nil {
				hw = ifi.HardwareAddr
			}
			return err
		}); err != nil {
			t.Fatal(err)
		}
		return hw
	}
	l.macA, l.macB = mac(l.a, vethA), mac(l.b, vethB)
	return l
}

// XDP attachment as rtnetlink reports it (IFLA_XDP_ATTACHED values).
const (
	xdpAttachedNone = 0
	xdpAttachedDrv  = 1
	xdpAttachedSKB  = 2
)

// xdpState asks rtnetlink, in ns, how an XDP program is attached to iface:
// the IFLA_XDP_ATTACHED mode and the program's ID.
func xdpState(t *testing.T, ns *testenv.NetNS, iface string) (mode uint8, id ebpf.ProgramID) {
	t.Helper()
	err := ns.Do(func() error {
		ifi, err := net.InterfaceByName(iface)
		if err != nil {
			return err
		}
		req := nl.NewNetlinkRequest(unix.RTM_GETLINK, 0)
		msg := nl.NewIfInfomsg(unix.AF_UNSPEC)
		msg.Index = int32(ifi.Index)
		req.AddData(msg)
		msgs, err := req.Execute(unix.NETLINK_ROUTE, unix.RTM_NEWLINK)
		if err != nil {
			return err
		}
		if len(msgs) != 1 {
			return fmt.Errorf("%d answers to RTM_GETLINK", len(msgs))
		}
		attrs, err := nl.ParseRouteAttr(msgs[0][unix.SizeofIfInfomsg:])
		if err != nil {
			return err
		}
		for _, a := range attrs {
			if a.Attr.Type&^(unix.NLA_F_NESTED|unix.NLA_F_NET_BYTEORDER) != unix.IFLA_XDP {
				continue
			}
			nested, err := nl.ParseRouteAttr(a.Value)
			if err != nil {
				return err
			}
			for _, x := range nested {
				switch x.Attr.Type {
				case unix.IFLA_XDP_ATTACHED:
					mode = x.Value[0]
				case unix.IFLA_XDP_PROG_ID:
					id = ebpf.ProgramID(nl.NativeEndian().Uint32(x.Value))
				}
			}
			return nil
		}
		return fmt.Errorf("no IFLA_XDP in the answer")
	})
	if err != nil {
		t.Fatalf("xdp state of %s: %v", iface, err)
	}
	return mode, id
}

func progID(t testing.TB, p *ebpf.Program) ebpf.ProgramID {
	t.Helper()
	info, err := p.Info()
	if err != nil {
		t.Fatal(err)
	}
	id, ok := info.ID()
	if !ok {
		t.Fatal("kernel reports no program ID")
	}
	return id
}

// waitFor polls cond every 10ms for up to 5s and reports whether it held.
func waitFor(cond func() bool) bool {
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if cond() {
			return true
		}
	}
	return cond()
}

// tcpEcho checks that a TCP connection from B to A's address works: ARP
// for the host's address and TCP to it reach A's kernel.
func (l *vethLab) tcpEcho(t *testing.T) {
	t.Helper()
	var ln net.Listener
	if err := l.a.Do(func() (err error) {
		ln, err = net.Listen("tcp4", netip.AddrPortFrom(vethAddrA.Addr(), 0).String())
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		io.Copy(c, c)
	}()
	err := l.b.Do(func() error {
		c, err := net.DialTimeout("tcp4", ln.Addr().String(), 3*time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(3 * time.Second))
		if _, err := c.Write([]byte("ping")); err != nil {
			return err
		}
		buf := make([]byte, 4)
		if _, err := io.ReadFull(c, buf); err != nil {
			return err
		}
		if string(buf) != "ping" {
			return fmt.Errorf("echo %q", buf)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("TCP from %s to the host's address: %v", vethB, err)
	}
}

// sendUDP sends n datagrams from B to dst.
func (l *vethLab) sendUDP(t *testing.T, dst netip.AddrPort, n int) {
	t.Helper()
	err := l.b.Do(func() error {
		c, err := net.Dial("udp4", dst.String())
		if err != nil {
			return err
		}
		defer c.Close()
		for range n {
			if _, err := c.Write([]byte("culvert")); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("UDP to %v: %v", dst, err)
	}
}

// sendFrame sends a raw Ethernet frame out of B's end of the pair.
func (l *vethLab) sendFrame(t *testing.T, frame []byte) {
	t.Helper()
	err := l.b.Do(func() error {
		ifi, err := net.InterfaceByName(vethB)
		if err != nil {
			return err
		}
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		return unix.Sendto(fd, frame, 0, &unix.SockaddrLinklayer{Ifindex: ifi.Index, Halen: 6})
	})
	if err != nil {
		t.Fatalf("send frame: %v", err)
	}
}

func TestSteerVeth(t *testing.T) {
	testenv.RequireRoot(t)
	tests := []struct {
		mode     AttachMode
		want     AttachMode
		attached uint8
	}{
		{AttachAuto, AttachNative, xdpAttachedDrv}, // veth has native XDP
		{AttachGeneric, AttachGeneric, xdpAttachedSKB},
	}
	for _, tt := range tests {
		t.Run(tt.mode.String(), func(t *testing.T) {
			l := newVethLab(t)
			var s *Steering
			if err := l.a.Do(func() (err error) {
				s, err = newSteering(vethA, 1, tt.mode)
				return err
			}); err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if s.Mode() != tt.want {
				t.Errorf("attached in %v mode, want %v", s.Mode(), tt.want)
			}
			if mode, id := xdpState(t, l.a, vethA); mode != tt.attached || id != progID(t, s.prog) {
				t.Fatalf("rtnetlink: mode %d, program %d; want mode %d, program %d", mode, id, tt.attached, progID(t, s.prog))
			}

			// The host's own traffic still reaches its kernel.
			l.tcpEcho(t)
			if st, _ := s.Stats(); st.Passed == 0 || st.Redirected != 0 || st.RedirectFailed != 0 {
				t.Errorf("after TCP to the host: %+v, want only passed frames", st)
			}

			// A VIP with one UDP service, reached through A.
			vip := netip.MustParseAddr("198.18.1.1")
			if err := s.Update([][4]byte{vip.As4()}, []SteerService{{vip.As4(), 53, 17}}, nil); err != nil {
				t.Fatal(err)
			}
			l.b.MustExec(t, "ip", "route", "add", vip.String()+"/32", "via", vethAddrA.Addr().String())
			l.sendUDP(t, netip.AddrPortFrom(vip, 54), 3) // no service: passed
			l.sendUDP(t, netip.AddrPortFrom(vip, 53), 5) // no socket yet: redirect-failed
			if !waitFor(func() bool { st, _ := s.Stats(); return st.RedirectFailed >= 5 }) {
				st, _ := s.Stats()
				t.Fatalf("after 5 datagrams to the service: %+v", st)
			}
			if st, _ := s.Stats(); st.RedirectFailed != 5 || st.Redirected != 0 {
				t.Errorf("after 5 datagrams to the service and 3 to another port: %+v, want 5 redirect-failed", st)
			}

			// With a socket in the XSKMAP the program redirects. The socket
			// is not bound, so the kernel then drops the frames: the
			// counter shows the program's decision.
			if err := s.SetSocket(0, progXSK(t)); err != nil {
				t.Fatal(err)
			}
			l.sendUDP(t, netip.AddrPortFrom(vip, 53), 4)
			if !waitFor(func() bool { st, _ := s.Stats(); return st.Redirected >= 4 }) {
				st, _ := s.Stats()
				t.Fatalf("after 4 datagrams with a socket: %+v", st)
			}

			// ARP for the VIP goes to the dataplane too.
			before, _ := s.Stats()
			l.sendFrame(t, packettest.ARPRequest([6]byte(l.macB), vethAddrB.Addr(), vip))
			if !waitFor(func() bool { st, _ := s.Stats(); return st.Redirected == before.Redirected+1 }) {
				st, _ := s.Stats()
				t.Errorf("ARP request for the VIP: %+v, want one more redirected than %+v", st, before)
			}

			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			if mode, id := xdpState(t, l.a, vethA); mode != xdpAttachedNone || id != 0 {
				t.Errorf("after Close: mode %d, program %d still attached", mode, id)
			}
			l.tcpEcho(t)
		})
	}
}

// steerChildEnv tells the helper process where to attach: "netns/iface",
// netns a name `ip netns` knows.
const steerChildEnv = "CULVERT_NIC_STEER_CHILD"

// TestSteerChildProcess is the process TestSteerDetachesWhenKilled kills.
// Run by itself it skips.
func TestSteerChildProcess(t *testing.T) {
	ns, iface, ok := strings.Cut(os.Getenv(steerChildEnv), "/")
	if !ok {
		t.Skip("helper process of TestSteerDetachesWhenKilled")
	}
	runtime.LockOSThread() // never unlocked: this thread stays in the namespace
	f, err := os.Open("/run/netns/" + ns)
	if err == nil {
		err = unix.Setns(int(f.Fd()), unix.CLONE_NEWNET)
	}
	if err != nil {
		fmt.Printf("error: enter netns %s: %v\n", ns, err)
		os.Exit(1)
	}
	s, err := NewSteering(iface, 1)
	if err != nil {
		fmt.Printf("error: %v\n", err)
		os.Exit(1)
	}
	fmt.Printf("attached %d\n", progID(t, s.prog))
	time.Sleep(time.Minute) // until killed
	os.Exit(2)
}

func TestSteerDetachesWhenKilled(t *testing.T) {
	l := newVethLab(t)
	cmd := exec.Command(os.Args[0], "-test.run=^TestSteerChildProcess$", "-test.count=1", "-test.timeout=2m")
	cmd.Env = append(os.Environ(), steerChildEnv+"="+l.a.Name()+"/"+vethA)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cmd.Process.Kill()
		cmd.Wait()
	}()

	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	var id ebpf.ProgramID
	timeout := time.After(30 * time.Second)
wait:
	for {
		select {
		case line, ok := <-lines:
			if !ok {
				t.Fatal("the child exited before attaching")
			}
			if strings.HasPrefix(line, "error: ") {
				t.Fatalf("child: %s", line)
			}
			if _, err := fmt.Sscanf(line, "attached %d", &id); err == nil {
				break wait
			}
		case <-timeout:
			t.Fatal("the child did not attach within 30s")
		}
	}
	if mode, got := xdpState(t, l.a, vethA); mode != xdpAttachedDrv || got != id {
		t.Fatalf("with the child alive: mode %d, program %d; want mode %d, program %d", mode, got, xdpAttachedDrv, id)
	}

	if err := cmd.Process.Signal(unix.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err == nil || !strings.Contains(err.Error(), "killed") {
		t.Errorf("child exit: %v, want killed", err)
	}
	// The kernel releases the link asynchronously after the last
	// descriptor closes.
	if !waitFor(func() bool { mode, got := xdpState(t, l.a, vethA); return mode == xdpAttachedNone && got == 0 }) {
		mode, got := xdpState(t, l.a, vethA)
		t.Fatalf("5s after SIGKILL: mode %d, program %d still attached", mode, got)
	}
	if !waitFor(func() bool {
		p, err := ebpf.NewProgramFromID(id)
		if err == nil {
			p.Close()
		}
		return err != nil
	}) {
		t.Errorf("program %d still loaded 5s after its process died", id)
	}
	l.tcpEcho(t)
}

func TestDecapVeth(t *testing.T) {
	l := newVethLab(t)
	// The backend serves the VIP on its loopback, as DSR backends do.
	vip := netip.MustParseAddrPort("198.18.5.5:9000")
	l.a.MustExec(t, "ip", "addr", "add", vip.Addr().String()+"/32", "dev", "lo")
	var conn *net.UDPConn
	if err := l.a.Do(func() (err error) {
		conn, err = net.ListenUDP("udp4", net.UDPAddrFromAddrPort(vip))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	recv := func(wait time.Duration) string {
		conn.SetReadDeadline(time.Now().Add(wait))
		buf := make([]byte, 100)
		n, err := conn.Read(buf)
		if err != nil {
			return ""
		}
		return string(buf[:n])
	}

	lb := packettest.Endpoint{MAC: [6]byte(l.macB), Addr: netip.AddrPortFrom(vethAddrB.Addr(), 0)}
	client := packettest.Endpoint{MAC: [6]byte(l.macB), Addr: netip.MustParseAddrPort("198.18.0.2:40000")}
	ipip := func(outerDst netip.Addr, payload string) []byte {
		inner := packettest.UDP4(client, packettest.Endpoint{MAC: [6]byte(l.macA), Addr: vip}, []byte(payload))
		return packettest.Encap4(lb, packettest.Endpoint{MAC: [6]byte(l.macA), Addr: netip.AddrPortFrom(outerDst, 0)}, packettest.IPPacket(inner))
	}

	// Without the program this kernel cannot take the outer header off.
	l.sendFrame(t, ipip(vethAddrA.Addr(), "before"))
	if got := recv(300 * time.Millisecond); got != "" {
		t.Fatalf("received %q without decapsulation: the kernel has an IPIP driver and this test proves nothing", got)
	}

	var d *Decap
	if err := l.a.Do(func() (err error) {
		d, err = NewDecap(vethA, [][4]byte{vethAddrA.Addr().As4()})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if mode, id := xdpState(t, l.a, vethA); mode != xdpAttachedDrv || id != progID(t, d.prog) || d.Mode() != AttachNative {
		t.Fatalf("rtnetlink: mode %d, program %d, Mode %v; want native program %d", mode, id, d.Mode(), progID(t, d.prog))
	}

	l.sendFrame(t, ipip(vethAddrA.Addr(), "decapsulated"))
	if got := recv(3 * time.Second); got != "decapsulated" {
		t.Errorf("the backend received %q, want the inner datagram", got)
	}
	// To an address not in the map: untouched, so the kernel drops it.
	l.sendFrame(t, ipip(netip.MustParseAddr("198.18.0.3"), "not ours"))
	if got := recv(300 * time.Millisecond); got != "" {
		t.Errorf("received %q from a tunnel to another address", got)
	}
	// The host's own traffic is untouched.
	l.tcpEcho(t)
	if st, err := d.Stats(); err != nil || st.Decapsulated != 1 || st.Passed < 2 {
		t.Errorf("stats %+v (%v), want 1 decapsulated and the rest passed", st, err)
	}

	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if mode, id := xdpState(t, l.a, vethA); mode != xdpAttachedNone || id != 0 {
		t.Errorf("after Close: mode %d, program %d still attached", mode, id)
	}
}
