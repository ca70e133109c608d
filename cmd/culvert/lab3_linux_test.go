package main

import (
	"context"
	"errors"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/culvert-lb/culvert/appliance"
	"github.com/culvert-lb/culvert/bench/lab"
)

// TestLabRoutedBackend: one backend sits behind the router, so the
// appliance reaches it through the router's MAC (route lookup + neighbour
// table); every mode still reaches all three backends.
func TestLabRoutedBackend(t *testing.T) {
	for _, mode := range []string{"nat", "dsr", "ipip"} {
		t.Run(mode, func(t *testing.T) {
			if mode == "dsr" {
				t.Skip("dsr needs every backend on the appliance's L2 segment (only the MAC changes); use ipip for routed backends")
			}
			r := labForTestWith(t, mode, lab.Options{Topology: lab.RoutedBackend})
			tr := r.traffic(context.Background(), 200, 20)
			if tr.HTTPOK != tr.HTTPSent || tr.UDPOK != tr.UDPSent {
				t.Fatalf("http %d/%d udp %d/%d %v\n%s", tr.HTTPOK, tr.HTTPSent, tr.UDPOK, tr.UDPSent, tr.Errors, r.logBuf)
			}
			if len(tr.PerBackend) != 3 || tr.PerBackend["b2"] == 0 {
				t.Fatalf("routed backend b2 got nothing: %v", tr.PerBackend)
			}
		})
	}
}

// TestLabIPIPFragNeeded: with backend-side links at MTU 1500, a full-size
// datagram cannot be encapsulated; the appliance answers with
// fragmentation-needed (MTU 1480), the client's kernel learns it, and
// datagrams that fit are echoed. With the lab's default MTU 1520 the same
// datagram goes through.
func TestLabIPIPFragNeeded(t *testing.T) {
	send := func(r *labRun, size int) (bool, error) {
		c, err := r.lab.Client.Dial("udp4", net.JoinHostPort(r.lab.VIP.String(), "7"))
		if err != nil {
			return false, err
		}
		defer c.Close()
		// Path MTU discovery as TCP does it: DF set, no local
		// fragmentation, EMSGSIZE once the kernel knows the path MTU.
		if sc, err := c.(*net.UDPConn).SyscallConn(); err == nil {
			sc.Control(func(fd uintptr) {
				syscall.SetsockoptInt(int(fd), syscall.IPPROTO_IP, syscall.IP_MTU_DISCOVER, syscall.IP_PMTUDISC_DO)
			})
		}
		c.SetDeadline(time.Now().Add(time.Second))
		if _, err := c.Write(make([]byte, size)); err != nil {
			return false, err
		}
		buf := make([]byte, 4096)
		_, err = c.Read(buf)
		return err == nil, nil
	}
	t.Run("link mtu 1520 fits", func(t *testing.T) {
		r := labForTest(t, "ipip")
		ok, err := send(r, 1468)
		if err != nil || !ok {
			t.Fatalf("1496-byte packet (echo reply 1500) through ipip at MTU 1520: ok=%v err=%v", ok, err)
		}
	})
	t.Run("mtu 1500 answers frag-needed", func(t *testing.T) {
		// The appliance is told its link carries 1500: a 1500-byte packet
		// cannot take 20 more bytes.
		r := labForTestWith(t, "ipip", lab.Options{}, func(_ *lab.Lab, s *appliance.Spec) error { s.MTU = 1500; return nil })
		if ok, _ := send(r, 1468); ok {
			t.Fatal("a 1500-byte packet was encapsulated past a 1500 MTU")
		}
		// The client's kernel learned MTU 1480 toward the VIP: the same
		// send now fails locally, and a datagram that fits is echoed.
		deadline := time.Now().Add(3 * time.Second)
		for {
			_, err := send(r, 1468)
			if errors.Is(err, syscall.EMSGSIZE) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("client never learned the path MTU (last error %v)", err)
			}
			time.Sleep(100 * time.Millisecond)
		}
		if ok, err := send(r, 1448); !ok || err != nil {
			t.Fatalf("a 1476-byte packet was not echoed: %v", err)
		}
		s, err := r.stopDaemon()
		if err != nil {
			t.Fatal(err)
		}
		if s.Dataplane.FragNeeded == 0 {
			t.Fatal("no fragmentation-needed counted")
		}
	})
}
