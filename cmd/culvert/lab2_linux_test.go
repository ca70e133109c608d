package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/culvert-lb/culvert/bench/lab"
	"github.com/culvert-lb/culvert/internal/header"
	pt "github.com/culvert-lb/culvert/internal/packettest"
)

// TestLabLongTransfer: a long TCP transfer through the VIP arrives complete
// and correct in every mode.
func TestLabLongTransfer(t *testing.T) {
	for _, mode := range []string{"nat", "dsr", "ipip"} {
		t.Run(mode, func(t *testing.T) {
			r := labForTest(t, mode)
			const n = 256 << 20
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			start := time.Now()
			c := r.client()
			c.Timeout = 60 * time.Second
			resp, err := c.Get(fmt.Sprintf("http://%s/bytes?n=%d", r.lab.VIP, n))
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var got int64
			buf := make([]byte, 1<<16)
			for ctx.Err() == nil {
				k, err := resp.Body.Read(buf)
				if !lab.BytesBody(buf[:k], got) {
					t.Fatalf("wrong bytes at offset %d", got)
				}
				got += int64(k)
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatalf("after %d bytes: %v", got, err)
				}
			}
			el := time.Since(start)
			if got != n {
				t.Fatalf("received %d bytes, want %d", got, n)
			}
			t.Logf("%s: %d MiB in %v (%.0f Mbit/s)", mode, n>>20, el.Round(time.Millisecond), float64(n)*8/el.Seconds()/1e6)
		})
	}
}

// TestLabTLSPassthrough: HTTPS to the VIP reaches a backend that
// terminates TLS itself; the certificate the client sees is that backend's
// own, so the appliance holds no key.
func TestLabTLSPassthrough(t *testing.T) {
	for _, mode := range []string{"nat", "dsr"} {
		t.Run(mode, func(t *testing.T) {
			r := labForTest(t, mode)
			certs := map[string][]byte{}
			for _, b := range r.lab.Backends {
				blk, _ := pem.Decode(b.CertPEM)
				if blk == nil {
					t.Fatalf("backend %s has no certificate", b.Role)
				}
				certs[b.Role] = blk.Bytes
			}
			seen := map[string]bool{}
			for i := 0; i < 30; i++ {
				raw, err := r.lab.Client.Dial("tcp4", net.JoinHostPort(r.lab.VIP.String(), "443"))
				if err != nil {
					t.Fatal(err)
				}
				c := tls.Client(raw, &tls.Config{InsecureSkipVerify: true, ServerName: "culvert-lab"})
				c.SetDeadline(time.Now().Add(5 * time.Second))
				if _, err := c.Write([]byte("GET / HTTP/1.0\r\n\r\n")); err != nil {
					t.Fatal(err)
				}
				body, err := io.ReadAll(c)
				c.Close()
				if err != nil {
					t.Fatal(err)
				}
				name := ""
				if i := bytes.Index(body, []byte("backend ")); i >= 0 {
					name = strings.TrimSpace(string(body[i+8:]))
				}
				peer := c.ConnectionState().PeerCertificates
				if len(peer) == 0 || certs[name] == nil || !bytes.Equal(peer[0].Raw, certs[name]) {
					t.Fatalf("answer from %q did not come with that backend's certificate", name)
				}
				seen[name] = true
			}
			if len(seen) < 2 {
				t.Fatalf("30 TLS connections reached only %v", seen)
			}
		})
	}
}

// TestLabHostTrafficAndPing: while the XDP program is attached, a TCP
// service on the appliance host's own address works, and the VIP answers
// ping.
func TestLabHostTrafficAndPing(t *testing.T) {
	r := labForTest(t, "nat")
	addr := r.lab.Appliance.Addr
	ln, err := r.lab.Appliance.Listen("tcp4", net.JoinHostPort(addr.String(), "2222"))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			io.Copy(c, c)
			c.Close()
		}
	}()
	c, err := r.lab.Client.Dial("tcp4", net.JoinHostPort(addr.String(), "2222"))
	if err != nil {
		t.Fatalf("host service with XDP attached: %v", err)
	}
	c.SetDeadline(time.Now().Add(3 * time.Second))
	c.Write([]byte("hello host"))
	buf := make([]byte, 10)
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "hello host" {
		t.Fatalf("echo from the host service: %q %v", buf, err)
	}
	c.Close()

	// ICMP echo to the VIP, from the client's kernel.
	pc, err := r.lab.Client.ListenPacket("ip4:icmp", "0.0.0.0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	msg := []byte{header.ICMPv4Echo, 0, 0, 0, 0x12, 0x34, 0, 1, 'c', 'u', 'l', 'v'}
	header.ICMPv4(msg).SetChecksum(header.ICMPv4(msg).CalculateChecksum())
	if _, err := pc.WriteTo(msg, &net.IPAddr{IP: net.IP(r.lab.VIP.AsSlice())}); err != nil {
		t.Fatal(err)
	}
	pc.SetReadDeadline(time.Now().Add(3 * time.Second))
	b := make([]byte, 1500)
	for {
		n, from, err := pc.ReadFrom(b)
		if err != nil {
			t.Fatalf("no echo reply from the VIP: %v", err)
		}
		if from.String() == r.lab.VIP.String() && n >= 8 && b[0] == header.ICMPv4EchoReply && binary.BigEndian.Uint16(b[4:]) == 0x1234 {
			return
		}
	}
}

// sendRaw sends frames out of ifname in the host's namespace with an
// AF_PACKET socket, as a broken or hostile neighbour would.
func sendRaw(h *lab.Host, ifname string, frames [][]byte) error {
	return h.Do(func() error {
		ifc, err := net.InterfaceByName(ifname)
		if err != nil {
			return err
		}
		fd, err := syscall.Socket(syscall.AF_PACKET, syscall.SOCK_RAW, 0)
		if err != nil {
			return err
		}
		defer syscall.Close(fd)
		sa := &syscall.SockaddrLinklayer{Ifindex: ifc.Index, Halen: 6}
		for _, f := range frames {
			if err := syscall.Sendto(fd, f, 0, sa); err != nil {
				return err
			}
		}
		return nil
	})
}

// TestLabMalformedFrames: malformed and unexpected frames aimed at the VIP
// are counted and dropped; the appliance keeps forwarding.
func TestLabMalformedFrames(t *testing.T) {
	r := labForTest(t, "nat")
	mac := r.lab.ServerSide.MAC
	var frames [][]byte
	for _, fx := range pt.Fixtures() {
		switch fx.Want {
		case pt.WantTCP, pt.WantUDP, pt.WantICMP, pt.WantARP, pt.WantIPv6:
			continue
		}
		f := retarget(fx.Frame, r.lab.VIP.As4())
		copy(f[0:6], mac)
		for i := 0; i < 20; i++ {
			frames = append(frames, f)
		}
	}
	router := r.lab.Router.LinkOn(lab.SegmentServer)
	if err := sendRaw(r.lab.Router, router.Name, frames); err != nil {
		t.Fatal(err)
	}
	tr := r.traffic(context.Background(), 50, 10)
	if tr.HTTPOK != 50 || tr.UDPOK != 10 {
		t.Fatalf("after malformed frames: http %d/50 udp %d/10 %v", tr.HTTPOK, tr.UDPOK, tr.Errors)
	}
	s, err := r.stopDaemon()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("drops by reason: %v; steering %+v", s.DropReasons, s.Steering)
	for _, why := range []string{"bad-ip-checksum", "fragment", "ip-options", "truncated", "bad-tcp-header", "bad-total-length"} {
		if s.DropReasons[why] == 0 {
			t.Errorf("no %s drops counted", why)
		}
	}
}

// retarget aims a fixture at the VIP's services: IPv4 destination to vip
// (header checksum patched, so a bad one stays bad), UDP destination port
// to the echo service's.
func retarget(frame []byte, vip [4]byte) []byte {
	f := append([]byte(nil), frame...)
	if len(f) < 34 || header.Ethernet(f).Type() != header.EtherTypeIPv4 || f[14]>>4 != 4 {
		return f
	}
	ip := header.IPv4(f[14:])
	ip.SetDst(vip)
	if hl := ip.HeaderLen(); ip.Protocol() == header.ProtoUDP && len(f) >= 14+hl+4 {
		binary.BigEndian.PutUint16(f[14+hl+2:], 7)
	}
	return f
}

// xdpAttached reports whether ifname in h's namespace has an XDP program.
func xdpAttached(t *testing.T, h *lab.Host, ifname string) bool {
	t.Helper()
	on, err := h.XDPAttached(ifname)
	if err != nil {
		t.Fatal(err)
	}
	return on
}

// TestLabNothingLeftBehind: a stopped daemon, and a daemon killed with
// SIGKILL, leave no XDP program attached; lab down leaves no namespace.
func TestLabNothingLeftBehind(t *testing.T) {
	r := labForTest(t, "nat")
	ifname := r.lab.ServerSide.Name
	if !xdpAttached(t, r.lab.Appliance, ifname) {
		t.Fatal("no XDP program attached while the daemon runs")
	}
	if _, err := r.stopDaemon(); err != nil {
		t.Fatal(err)
	}
	if xdpAttached(t, r.lab.Appliance, ifname) {
		t.Fatal("XDP program still attached after a clean stop")
	}

	// Again with kill -9.
	cmd := r.lab.Appliance.Command(r.exe, "run", "--config", filepath.Join(r.dir, "culvert.yaml"), "--control", filepath.Join(r.dir, "again.sock"))
	cmd.Env = append(os.Environ(), r.env...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !xdpAttached(t, r.lab.Appliance, ifname) {
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatal("restarted daemon did not attach")
		}
		time.Sleep(50 * time.Millisecond)
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	deadline = time.Now().Add(5 * time.Second)
	for xdpAttached(t, r.lab.Appliance, ifname) {
		if time.Now().After(deadline) {
			t.Fatal("XDP program still attached 5 s after kill -9")
		}
		time.Sleep(50 * time.Millisecond)
	}

	name := r.lab.Name
	r.stop()
	left, _ := filepath.Glob("/run/netns/" + name + "-*")
	if len(left) > 0 {
		t.Fatalf("namespaces left after lab down: %v", left)
	}
}
