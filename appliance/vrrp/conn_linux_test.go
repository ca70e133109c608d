package vrrp

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/culvert-lb/culvert/internal/header"
	"github.com/culvert-lb/culvert/internal/testenv"
)

var (
	labA = netip.MustParseAddr(addrA)
	labB = netip.MustParseAddr(addrB)
)

// lab is two namespaces joined by a veth pair, v0 in each: a has
// 198.18.5.1/24 and b 198.18.5.2/24.
type lab struct {
	a, b *testenv.NetNS
}

func newLab(t *testing.T) *lab {
	t.Helper()
	testenv.RequireRoot(t)
	l := &lab{a: testenv.NewNetNS(t), b: testenv.NewNetNS(t)}
	testenv.NewVeth(t, l.a, "v0", l.b, "v0")
	l.a.MustExec(t, "ip", "addr", "add", addrA+"/24", "dev", "v0")
	l.b.MustExec(t, "ip", "addr", "add", addrB+"/24", "dev", "v0")
	waitOperUp(t, l.a, "v0")
	waitOperUp(t, l.b, "v0")
	return l
}

// waitOperUp waits until ifname in ns is operationally up: the kernel
// reports carrier asynchronously (linkwatch), up to a second after both
// ends of a new veth are set up, and a Router tracks its own link.
func waitOperUp(t *testing.T, ns *testenv.NetNS, ifname string) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for {
		out := ns.MustExec(t, "ip", "-o", "link", "show", ifname)
		if strings.Contains(out, "state UP") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not up after 3s: %s", ifname, out)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// listenIn opens a Conn inside ns; cleanup closes it.
func listenIn(t *testing.T, ns *testenv.NetNS, cfg ConnConfig) *Conn {
	t.Helper()
	var c *Conn
	if err := ns.Do(func() (err error) { c, err = Listen(cfg); return err }); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// readPacket reads one packet within timeout.
func readPacket(t *testing.T, c *Conn, buf []byte, timeout time.Duration) []byte {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(timeout))
	defer c.SetReadDeadline(time.Time{})
	n, err := c.Read(buf)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return buf[:n]
}

func TestConnRoundTrip(t *testing.T) {
	for _, mode := range []string{"multicast", "unicast"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			l := newLab(t)
			var pa, pb []netip.Addr
			wantDstAtB, wantDstAtA := MulticastGroup, MulticastGroup
			if mode == "unicast" {
				pa, pb = []netip.Addr{labB}, []netip.Addr{labA}
				wantDstAtB, wantDstAtA = labB, labA
			}
			ca := listenIn(t, l.a, ConnConfig{Interface: "v0", Peers: pa}) // Addr picked from v0
			cb := listenIn(t, l.b, ConnConfig{Interface: "v0", Addr: labB, Peers: pb})
			if ca.Addr() != labA {
				t.Fatalf("a picked %v, want %v", ca.Addr(), labA)
			}
			adv := Advert{VRID: 5, Priority: 150, MaxAdvertInterval: 100 * time.Millisecond, Addrs: []netip.Addr{vip5, snat5}}
			if err := ca.Send(&adv); err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, ReceiveBufferSize)
			pkt := readPacket(t, cb, buf, 2*time.Second)
			ip := header.IPv4(pkt)
			if ip.Validate() != header.IPv4OK || ip.TTL() != TTL || ip.Protocol() != IPProtocol ||
				netip.AddrFrom4(ip.Src()) != labA || netip.AddrFrom4(ip.Dst()) != wantDstAtB {
				t.Fatalf("header on the wire: ttl %d proto %d %v -> %v, want ttl 255 proto 112 %v -> %v",
					ip.TTL(), ip.Protocol(), netip.AddrFrom4(ip.Src()), netip.AddrFrom4(ip.Dst()), labA, wantDstAtB)
			}
			got, from, err := parsePacket(pkt)
			if err != nil {
				t.Fatal(err)
			}
			if from != labA || got.VRID != 5 || got.Priority != 150 || got.MaxAdvertInterval != adv.MaxAdvertInterval || !slices.Equal(got.Addrs, adv.Addrs) {
				t.Fatalf("b received %+v from %v, want %+v from %v", got, from, adv, labA)
			}

			// The other way, through Receive.
			back := Advert{VRID: 5, Priority: 100, MaxAdvertInterval: time.Second, Addrs: []netip.Addr{vip5}}
			if err := cb.Send(&back); err != nil {
				t.Fatal(err)
			}
			ca.SetReadDeadline(time.Now().Add(2 * time.Second))
			got, from, err = ca.Receive(buf)
			if err != nil || from != labB || got.Priority != 100 || !slices.Equal(got.Addrs, back.Addrs) {
				t.Fatalf("a received %+v from %v, %v", got, from, err)
			}
			hdr := header.IPv4(buf)
			if netip.AddrFrom4(hdr.Dst()) != wantDstAtA || hdr.TTL() != TTL {
				t.Fatalf("a saw dst %v ttl %d", netip.AddrFrom4(hdr.Dst()), hdr.TTL())
			}

			// Our own advertisement does not come back (IP_MULTICAST_LOOP 0).
			if err := ca.Send(&adv); err != nil {
				t.Fatal(err)
			}
			readPacket(t, cb, buf, 2*time.Second)
			ca.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
			if n, err := ca.Read(buf); !errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatalf("a read its own advert back: %d bytes, %v", n, err)
			}
		})
	}
}

func TestConnCloseUnblocksRead(t *testing.T) {
	t.Parallel()
	l := newLab(t)
	c := listenIn(t, l.a, ConnConfig{Interface: "v0"})
	errc := make(chan error, 1)
	go func() {
		_, err := c.Read(make([]byte, ReceiveBufferSize))
		errc <- err
	}()
	time.Sleep(50 * time.Millisecond)
	c.Close()
	select {
	case err := <-errc:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("Read after Close: %v, want net.ErrClosed", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Close did not unblock Read")
	}
	if err := c.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func TestListenErrors(t *testing.T) {
	t.Parallel()
	l := newLab(t)
	tests := []struct {
		name string
		cfg  ConnConfig
	}{
		{"no such interface", ConnConfig{Interface: "nope0"}},
		{"address not on interface", ConnConfig{Interface: "v0", Addr: labB}},
		{"no ipv4 on interface", ConnConfig{Interface: "lo", Addr: netip.Addr{}}},
		{"bad peer", ConnConfig{Interface: "v0", Peers: []netip.Addr{MulticastGroup}}},
	}
	l.a.MustExec(t, "ip", "addr", "flush", "dev", "lo")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := l.a.Do(func() error {
				c, err := Listen(tt.cfg)
				if err == nil {
					c.Close()
				}
				return err
			})
			if err == nil {
				t.Fatal("Listen succeeded")
			}
			t.Log(err)
		})
	}
}

// TestConnAllocs is the socket's allocation contract: a Send and a Read
// allocate nothing.
func TestConnAllocs(t *testing.T) {
	l := newLab(t)
	ca := listenIn(t, l.a, ConnConfig{Interface: "v0"})
	cb := listenIn(t, l.b, ConnConfig{Interface: "v0"})
	adv := Advert{VRID: 5, Priority: 150, MaxAdvertInterval: 100 * time.Millisecond, Addrs: []netip.Addr{vip5}}
	buf := make([]byte, ReceiveBufferSize)
	var err error
	allocs := testing.AllocsPerRun(100, func() {
		if err = ca.Send(&adv); err == nil {
			_, err = cb.Read(buf)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if allocs != 0 {
		t.Fatalf("Send+Read allocate %v", allocs)
	}
}

// BenchmarkConnRoundTrip sends an advertisement over a veth pair and reads
// it on the other side.
func BenchmarkConnRoundTrip(b *testing.B) {
	testenv.RequireRoot(b)
	na, nb := testenv.NewNetNS(b), testenv.NewNetNS(b)
	testenv.NewVeth(b, na, "v0", nb, "v0")
	na.MustExec(b, "ip", "addr", "add", addrA+"/24", "dev", "v0")
	nb.MustExec(b, "ip", "addr", "add", addrB+"/24", "dev", "v0")
	var ca, cb *Conn
	if err := na.Do(func() (err error) { ca, err = Listen(ConnConfig{Interface: "v0"}); return err }); err != nil {
		b.Fatal(err)
	}
	defer ca.Close()
	if err := nb.Do(func() (err error) { cb, err = Listen(ConnConfig{Interface: "v0"}); return err }); err != nil {
		b.Fatal(err)
	}
	defer cb.Close()
	adv := Advert{VRID: 5, Priority: 150, MaxAdvertInterval: 100 * time.Millisecond, Addrs: []netip.Addr{vip5}}
	buf := make([]byte, ReceiveBufferSize)
	b.ReportAllocs()
	for b.Loop() {
		if err := ca.Send(&adv); err != nil {
			b.Fatal(err)
		}
		if _, err := cb.Read(buf); err != nil {
			b.Fatal(err)
		}
	}
}
