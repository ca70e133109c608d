//go:build linux

package lab

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/culvert-lb/culvert/internal/testenv"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// childEnv makes the test binary, run again by a test, play a part:
// "fail:<name>", "crash:<name>" or "netns".
const childEnv = "CULVERT_LAB_TEST_CHILD"

// child returns the part this process plays for test, or "".
func child(test string) (mode, name string) {
	v := os.Getenv(childEnv)
	if !strings.HasPrefix(v, test+":") {
		return "", ""
	}
	mode, name, _ = strings.Cut(strings.TrimPrefix(v, test+":"), ":")
	return mode, name
}

// runChild runs this test binary for test with the given part.
func runChild(ctx context.Context, test, part string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^"+test+"$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), childEnv+"="+test+":"+part)
	return cmd
}

// testName returns a lab name no namespace uses.
func testName(t *testing.T, prefix string) string {
	t.Helper()
	var b [2]byte
	rand.Read(b[:])
	name := prefix + hex.EncodeToString(b[:])
	if names, _ := listNamedNS(name); len(names) > 0 {
		t.Fatalf("name %s in use", name)
	}
	return name
}

func inode(path string) (uint64, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return 0, err
	}
	return st.Ino, nil
}

// checkGone fails t if anything named prefix is left: a namespace, or a
// link in the root namespace.
func checkGone(t *testing.T, prefix string) {
	t.Helper()
	names, err := listNamedNS(prefix)
	if err != nil {
		t.Fatal(err)
	}
	if len(names) > 0 {
		t.Errorf("namespaces left: %v", names)
	}
	links, err := netlink.LinkList()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range links {
		if strings.HasPrefix(l.Attrs().Name, prefix) {
			t.Errorf("root namespace link left: %s", l.Attrs().Name)
		}
	}
}

// holdNS opens a namespace as a process still inside it would hold it,
// and returns a function that reports the interfaces left in it (other
// than loopback) and lets it go.
func holdNS(t *testing.T, name string) (leftAndClose func() []string) {
	t.Helper()
	ns, err := netns.GetFromPath(filepath.Join(netnsDir, name))
	if err != nil {
		t.Fatal(err)
	}
	return func() []string {
		defer ns.Close()
		h, err := netlink.NewHandleAt(ns, unix.NETLINK_ROUTE)
		if err != nil {
			t.Fatal(err)
		}
		defer h.Delete()
		links, err := h.LinkList()
		if err != nil {
			t.Fatal(err)
		}
		var left []string
		for _, l := range links {
			if l.Attrs().Name != "lo" {
				left = append(left, l.Attrs().Name)
			}
		}
		return left
	}
}

// linkState is what the kernel says about one interface.
type linkState struct {
	mtu, txq, rxq int
	addrs         []netip.Prefix
	txCsum, gro   bool
}

// linksIn returns the state of every interface in h's namespace, by name.
func linksIn(h *Host) (map[string]linkState, error) {
	m := map[string]linkState{}
	err := h.Do(func() error {
		links, err := netlink.LinkList()
		if err != nil {
			return err
		}
		for _, l := range links {
			a := l.Attrs()
			s := linkState{mtu: a.MTU, txq: a.NumTxQueues, rxq: a.NumRxQueues}
			addrs, err := netlink.AddrList(l, netlink.FAMILY_V4)
			if err != nil {
				return err
			}
			for _, ad := range addrs {
				ip, _ := netip.AddrFromSlice(ad.IP.To4())
				ones, _ := ad.Mask.Size()
				s.addrs = append(s.addrs, netip.PrefixFrom(ip, ones))
			}
			if l.Type() == "veth" {
				if s.txCsum, err = TxChecksumOffload(a.Name); err != nil {
					return err
				}
				if s.gro, err = GRO(a.Name); err != nil {
					return err
				}
			}
			m[a.Name] = s
		}
		return nil
	})
	return m, err
}

// routeVia returns the gateway h's kernel picks for dst (zero if direct).
func routeVia(h *Host, dst netip.Addr) (netip.Addr, error) {
	var gw netip.Addr
	err := h.Do(func() error {
		rs, err := netlink.RouteGet(net.IP(dst.AsSlice()))
		if err != nil {
			return err
		}
		if len(rs) > 0 && rs[0].Gw != nil {
			gw, _ = netip.AddrFromSlice(rs[0].Gw.To4())
		}
		return nil
	})
	return gw, err
}

func get(c *http.Client, url string) (body []byte, resp *http.Response, err error) {
	resp, err = c.Get(url)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	body, err = io.ReadAll(resp.Body)
	return body, resp, err
}

// echo sends payload over UDP from h to addr and returns the answer. The
// socket is connected, so an answer from any other address is not seen.
func udpEcho(h *Host, addr, payload string) (string, error) {
	c, err := h.Dial("udp4", addr)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Write([]byte(payload)); err != nil {
		return "", err
	}
	buf := make([]byte, 2048)
	n, err := c.Read(buf)
	return string(buf[:n]), err
}

// checkServers checks, from the client, the three servers of backend b at
// address a (its own address, or the VIP routed to it).
func checkServers(t *testing.T, l *Lab, b *Host, a netip.Addr) {
	t.Helper()
	o := l.Options()
	hp := func(port uint16) string { return netip.AddrPortFrom(a, port).String() }
	c := l.Client.HTTPClient(nil)
	body, resp, err := get(c, "http://"+hp(o.HTTPPort)+"/")
	if err != nil {
		t.Fatalf("client -> %s: %v", b.Name, err)
	}
	if want := "backend " + b.Role + "\n"; string(body) != want || resp.Header.Get("X-Culvert-Backend") != b.Role {
		t.Errorf("client -> %s http: %q (X-Culvert-Backend %q), want %q", hp(o.HTTPPort), body, resp.Header.Get("X-Culvert-Backend"), want)
	}
	const n = 1 << 20
	body, _, err = get(c, fmt.Sprintf("http://%s/bytes?n=%d", hp(o.HTTPPort), n))
	if err != nil || len(body) != n || !BytesBody(body, 0) {
		t.Errorf("client -> %s /bytes: %d bytes, pattern %v, err %v", hp(o.HTTPPort), len(body), BytesBody(body, 0), err)
	}
	got, err := udpEcho(l.Client, hp(o.UDPPort), "ping")
	if want := b.Role + ": ping"; err != nil || got != want {
		t.Errorf("client -> %s udp: %q, %v; want %q", hp(o.UDPPort), got, err, want)
	}
	conf, err := ClientTLS(b.CertPEM, b.Role)
	if err != nil {
		t.Fatal(err)
	}
	body, resp, err = get(l.Client.HTTPClient(conf), "https://"+hp(o.HTTPSPort)+"/")
	if err != nil {
		t.Fatalf("client -> %s https: %v", hp(o.HTTPSPort), err)
	}
	blk, _ := pem.Decode(b.CertPEM)
	if string(body) != "backend "+b.Role+"\n" || !bytes.Equal(resp.TLS.PeerCertificates[0].Raw, blk.Bytes) {
		t.Errorf("client -> %s https: %q, or not the backend's own certificate", hp(o.HTTPSPort), body)
	}
}

func TestUpDown(t *testing.T) {
	testenv.RequireRoot(t)
	for _, tc := range []struct {
		name string
		opt  Options
	}{
		{"one-armed", Options{}},
		{"two-armed/2 queues", Options{Topology: TwoArmed, ApplianceQueues: 2}},
		{"routed-backend", Options{Topology: RoutedBackend, Backends: 2}},
		{"one-armed/dsr", Options{DSR: true, Backends: 2}},
		{"two-armed/routed/dsr", Options{Topology: TwoArmed, Routed: 1, DSR: true, Backends: 2, ClientMTU: 1400}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel() // labs side by side must not collide
			l := UpForTest(t, tc.opt)
			o := l.Options()

			// Every host is a named namespace, open in the Lab.
			for _, h := range l.Hosts() {
				ino, err := inode(filepath.Join(netnsDir, h.Name))
				if err != nil {
					t.Fatalf("%s: %v", h.Name, err)
				}
				var st unix.Stat_t
				if err := unix.Fstat(int(h.NS), &st); err != nil || st.Ino != ino {
					t.Errorf("%s: handle on inode %d, namespace %d (%v)", h.Name, st.Ino, ino, err)
				}
			}
			if len(l.Backends) != o.Backends {
				t.Fatalf("%d backends, want %d", len(l.Backends), o.Backends)
			}

			// Interfaces as planned: addresses, MTU, queues, offloads.
			applPeers := map[string]bool{}
			for _, ln := range l.Appliance.Links {
				applPeers[ln.PeerHost+"/"+ln.Peer] = true
			}
			for _, h := range l.Hosts() {
				state, err := linksIn(h)
				if err != nil {
					t.Fatal(err)
				}
				for _, ln := range h.Links {
					s, ok := state[ln.Name]
					if !ok {
						t.Errorf("%s: no %s", h.Name, ln.Name)
						continue
					}
					if ln.Addr.IsValid() && (len(s.addrs) != 1 || s.addrs[0] != ln.Addr) {
						t.Errorf("%s %s: addresses %v, want %v", h.Name, ln.Name, s.addrs, ln.Addr)
					}
					wantMTU := o.ServerMTU
					if ln.Segment == SegmentClient || ln.Segment == SegmentUplink {
						wantMTU = o.ClientMTU
					}
					if s.mtu != wantMTU || wantMTU < 1520 && ln.Segment != SegmentClient && ln.Segment != SegmentUplink {
						t.Errorf("%s %s: mtu %d, want %d", h.Name, ln.Name, s.mtu, wantMTU)
					}
					if h != l.Switch && s.txCsum {
						t.Errorf("%s %s: TX checksum offload on in a host that originates traffic", h.Name, ln.Name)
					}
					if applPeers[h.Name+"/"+ln.Name] {
						if !s.gro {
							t.Errorf("%s %s: GRO off on the peer of an appliance interface", h.Name, ln.Name)
						}
						if s.txq != o.ApplianceQueues || s.rxq != o.ApplianceQueues {
							t.Errorf("%s %s: %d tx, %d rx queues, want %d", h.Name, ln.Name, s.txq, s.rxq, o.ApplianceQueues)
						}
					}
					if h == l.Appliance && (s.txq != o.ApplianceQueues || s.rxq != o.ApplianceQueues) {
						t.Errorf("%s %s: %d tx, %d rx queues, want %d", h.Name, ln.Name, s.txq, s.rxq, o.ApplianceQueues)
					}
				}
				// Nobody holds a VIP or an SNAT address, except DSR backends
				// the VIP on loopback.
				for name, s := range state {
					for _, a := range s.addrs {
						if !VIPRange.Contains(a.Addr()) && !SNATRange.Contains(a.Addr()) {
							continue
						}
						dsrVIP := o.DSR && name == "lo" && a == netip.PrefixFrom(l.VIP, 32) && strings.HasPrefix(h.Role, "b")
						if !dsrVIP {
							t.Errorf("%s %s holds %v", h.Name, name, a)
						}
					}
				}
				if o.DSR && strings.HasPrefix(h.Role, "b") && !containsPrefix(state["lo"].addrs, netip.PrefixFrom(l.VIP, 32)) {
					t.Errorf("%s: no VIP on lo: %v", h.Name, state["lo"].addrs)
				}
			}

			// Sysctls in each namespace.
			for _, h := range l.Hosts() {
				want := map[string]string{"net.ipv4.ip_local_port_range": "1024\t65535", "net.ipv4.tcp_tw_reuse": "1", "net.ipv4.ip_forward": "0"}
				if h == l.Router {
					want["net.ipv4.ip_forward"] = "1"
				}
				if o.DSR && strings.HasPrefix(h.Role, "b") {
					want["net.ipv4.conf.all.arp_ignore"] = "1"
					want["net.ipv4.conf.all.arp_announce"] = "2"
				}
				for k, v := range want {
					if got, err := h.Sysctl(k); err != nil || got != v {
						t.Errorf("%s: %s = %q (%v), want %q", h.Name, k, got, err, v)
					}
				}
			}

			// Routes: VIPs and SNAT to the appliance; backends send SNAT
			// traffic to the appliance and client traffic to the router.
			type route struct {
				h       *Host
				dst, gw netip.Addr
			}
			snat := SNATRange.Addr().Next()
			routes := []route{
				{l.Client, l.VIP, l.Router.LinkOn(SegmentClient).Addr.Addr()},
				{l.Router, l.VIP, l.ClientSide.Addr.Addr()},
				{l.Router, snat, l.ServerSide.Addr.Addr()},
			}
			for _, b := range l.Backends {
				if b.Links[0].Segment == SegmentServer {
					routes = append(routes, route{b, snat, l.ServerSide.Addr.Addr()}, route{b, l.Client.Addr, l.Router.LinkOn(SegmentServer).Addr.Addr()})
				} else {
					via := l.Router.LinkOn(SegmentRouted).Addr.Addr()
					routes = append(routes, route{b, snat, via}, route{b, l.Client.Addr, via})
				}
			}
			routes = append(routes, route{l.Appliance, l.Client.Addr, l.Gateway().Addr.Addr()})
			for _, r := range routes {
				if gw, err := routeVia(r.h, r.dst); err != nil || gw != r.gw {
					t.Errorf("%s: route to %v via %v (%v), want %v", r.h.Name, r.dst, gw, err, r.gw)
				}
			}

			// The backends' servers answer the client through the router,
			// the appliance not in the path.
			for _, b := range l.Backends {
				checkServers(t, l, b, b.Addr)
			}
			// A certificate pins its own backend only.
			conf, _ := ClientTLS(l.Backends[0].CertPEM, l.Backends[0].Role)
			if _, _, err := get(l.Client.HTTPClient(conf), "https://"+netip.AddrPortFrom(l.Backends[1].Addr, o.HTTPSPort).String()+"/"); err == nil {
				t.Errorf("%s accepted with %s's certificate", l.Backends[1].Name, l.Backends[0].Name)
			}

			if o.DSR {
				// Stand in for the appliance: route the VIP to the last
				// backend. It takes the VIP (on lo) and answers the client
				// directly from it, TCP and UDP alike.
				b := l.Backends[len(l.Backends)-1]
				err := l.Router.Do(func() error {
					return netlink.RouteAdd(&netlink.Route{Dst: ipNet(netip.PrefixFrom(l.VIP, 32)), Gw: net.IP(b.Addr.AsSlice())})
				})
				if err != nil {
					t.Fatal(err)
				}
				checkServers(t, l, b, l.VIP)
			}

			// Down removes everything, and may be called again. Links go
			// even from a namespace something still holds.
			held := holdNS(t, l.Router.Name)
			if err := l.Down(); err != nil {
				t.Fatalf("down: %v", err)
			}
			checkGone(t, l.Name)
			if left := held(); len(left) > 0 {
				t.Errorf("links left in the held router namespace: %v", left)
			}
			for _, h := range l.Hosts() {
				if h.NS.IsOpen() {
					t.Errorf("%s: handle still open", h.Name)
				}
			}
			if err := l.Down(); err != nil {
				t.Errorf("second down: %v", err)
			}
			if err := l.Client.Do(func() error { return nil }); err == nil {
				t.Error("Do after Down: no error")
			}
		})
	}
}

func containsPrefix(ps []netip.Prefix, p netip.Prefix) bool {
	for _, q := range ps {
		if q == p {
			return true
		}
	}
	return false
}

// TestDownWhenTestFails runs a test that brings a lab up with UpForTest
// and then fails; its lab must be gone afterwards.
func TestDownWhenTestFails(t *testing.T) {
	if mode, name := child("TestDownWhenTestFails"); mode == "fail" {
		l := UpForTest(t, Options{Name: name})
		fmt.Println("LAB-UP", l.Name)
		t.Fatal("deliberate failure midway")
		return
	}
	testenv.RequireRoot(t)
	name := testName(t, "cvf")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := runChild(ctx, "TestDownWhenTestFails", "fail:"+name).CombinedOutput()
	if names, _ := listNamedNS(name); len(names) > 0 {
		Cleanup(name)
		t.Fatalf("the failed test left %v", names)
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) || !bytes.Contains(out, []byte("LAB-UP "+name)) || !bytes.Contains(out, []byte("deliberate failure midway")) {
		t.Fatalf("child did not bring its lab up and fail (%v):\n%s", err, out)
	}
	checkGone(t, name)
}

// TestCleanupAfterCrash kills a process that has a lab up, then removes
// what it left with Cleanup.
func TestCleanupAfterCrash(t *testing.T) {
	if mode, name := child("TestCleanupAfterCrash"); mode == "crash" {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		l, err := Up(ctx, Options{Name: name})
		if err != nil {
			t.Fatal(err)
		}
		fmt.Println("LAB-UP", l.Name)
		<-ctx.Done() // until killed; never Down
		return
	}
	testenv.RequireRoot(t)
	name := testName(t, "cvc")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := runChild(ctx, "TestCleanupAfterCrash", "crash:"+name)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { Cleanup(name) })
	up := false
	for sc := bufio.NewScanner(stdout); sc.Scan(); {
		if sc.Text() == "LAB-UP "+name {
			up = true
			break
		}
	}
	cmd.Process.Kill()
	cmd.Wait()
	if !up {
		t.Fatal("child never brought its lab up")
	}

	names, err := listNamedNS(name)
	if err != nil || len(names) != 4+3 {
		t.Fatalf("after the crash: namespaces %v (%v), want 7", names, err)
	}
	held := holdNS(t, name+"-router") // as a process still inside would
	if err := Cleanup(name); err != nil {
		t.Fatalf("cleanup: %v", err)
	}
	checkGone(t, name)
	if left := held(); len(left) > 0 {
		t.Errorf("links left in the held router namespace: %v", left)
	}
	if err := Cleanup(name); err != nil {
		t.Errorf("cleanup with nothing left: %v", err)
	}
	for _, bad := range []string{"", "../etc", "cv-1", "UPPER"} {
		if err := Cleanup(bad); err == nil {
			t.Errorf("Cleanup(%q): no error", bad)
		}
	}
}

// threadNS returns the inode of the calling thread's network namespace.
func threadNS() (uint64, error) { return inode("/proc/thread-self/ns/net") }

func TestHost(t *testing.T) {
	if mode, _ := child("TestHost"); mode == "netns" {
		ino, err := threadNS()
		fmt.Printf("NETNS %d %v\n", ino, err)
		return
	}
	l := UpForTest(t, Options{Backends: 1})
	clientNS, err := inode(filepath.Join(netnsDir, l.Client.Name))
	if err != nil {
		t.Fatal(err)
	}

	t.Run("Do", func(t *testing.T) {
		// The caller's thread never moves; fn's thread is in the host.
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		before, _ := threadNS()
		for i := 0; i < 20; i++ {
			var in uint64
			if err := l.Client.Do(func() (err error) { in, err = threadNS(); return err }); err != nil {
				t.Fatal(err)
			}
			if in != clientNS {
				t.Fatalf("in Do: namespace %d, want %d", in, clientNS)
			}
		}
		if after, _ := threadNS(); after != before || after == clientNS {
			t.Errorf("caller's namespace %d -> %d", before, after)
		}
		sentinel := errors.New("sentinel")
		if err := l.Client.Do(func() error { return sentinel }); !errors.Is(err, sentinel) {
			t.Errorf("error from fn: %v", err)
		}
		func() {
			defer func() {
				if v := recover(); v != "boom" {
					t.Errorf("recovered %v, want the panic from fn", v)
				}
			}()
			l.Client.Do(func() error { panic("boom") })
		}()
	})

	t.Run("Listen", func(t *testing.T) {
		// 198.19.0.2 exists only in the client's namespace.
		addr := netip.AddrPortFrom(l.Client.Addr, 0).String()
		if ln, err := net.Listen("tcp4", addr); err == nil {
			ln.Close()
			t.Fatalf("%s is bindable outside the lab", addr)
		}
		ln, err := l.Client.Listen("tcp4", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		go func() {
			if c, err := ln.Accept(); err == nil {
				c.Write([]byte("hi"))
				c.Close()
			}
		}()
		c, err := l.Backends[0].Dial("tcp4", ln.Addr().String())
		if err != nil {
			t.Fatalf("backend -> client: %v", err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(2 * time.Second))
		if b, err := io.ReadAll(c); string(b) != "hi" {
			t.Errorf("read %q, %v", b, err)
		}
	})

	t.Run("Command", func(t *testing.T) {
		cmd := l.Client.Command(os.Args[0], "-test.run=^TestHost$", "-test.count=1")
		cmd.Env = append(os.Environ(), childEnv+"=TestHost:netns") // replacing Env is allowed
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		if want := fmt.Sprintf("NETNS %d <nil>", clientNS); !bytes.Contains(out, []byte(want)) {
			t.Errorf("child says %q, want %q", out, want)
		}
		if err := l.Client.Command("culvert-no-such-program").Run(); !errors.Is(err, exec.ErrNotFound) {
			t.Errorf("missing program: %v", err)
		}
		gone := &Host{Name: l.Name + "-nosuchhost"}
		var ee *exec.ExitError
		// -test.run=^$: should the re-exec ever run the binary itself, it
		// runs no tests (rather than this one again, recursively).
		if err := gone.Command(os.Args[0], "-test.run=^$").Run(); !errors.As(err, &ee) || ee.ExitCode() != 127 {
			t.Errorf("missing namespace: %v, want exit status 127", err)
		}
	})

	t.Run("Servers", func(t *testing.T) {
		c := l.Client.HTTPClient(nil)
		url := "http://" + netip.AddrPortFrom(l.Backends[0].Addr, 80).String()
		for _, tc := range []struct {
			path string
			code int
		}{
			{"/", 200}, {"/bytes?n=0", 200}, {"/bytes?n=-1", 400}, {"/bytes?n=x", 400},
			{fmt.Sprintf("/bytes?n=%d", int64(MaxBytes)+1), 400}, {"/nothing", 404},
		} {
			if _, resp, err := get(c, url+tc.path); err != nil || resp.StatusCode != tc.code {
				t.Errorf("GET %s: %v, want %d", tc.path, err, tc.code)
			}
		}
		// A server of our own on the client: stop closes it.
		stop, err := l.Client.ServeUDPEcho(netip.AddrPortFrom(l.Client.Addr, 9).String(), "self")
		if err != nil {
			t.Fatal(err)
		}
		if got, err := udpEcho(l.Backends[0], netip.AddrPortFrom(l.Client.Addr, 9).String(), "x"); got != "self: x" {
			t.Errorf("echo: %q, %v", got, err)
		}
		stop()
		stop()
		if _, err := udpEcho(l.Backends[0], netip.AddrPortFrom(l.Client.Addr, 9).String(), "x"); err == nil {
			t.Error("echo answered after stop")
		}
		hstop, err := l.Client.ServeHTTP(netip.AddrPortFrom(l.Client.Addr, 8080).String(), "self")
		if err != nil {
			t.Fatal(err)
		}
		hc := l.Backends[0].HTTPClient(nil)
		selfURL := "http://" + netip.AddrPortFrom(l.Client.Addr, 8080).String() + "/"
		if body, _, err := get(hc, selfURL); string(body) != "backend self\n" {
			t.Errorf("GET: %q, %v", body, err)
		}
		hstop()
		if _, _, err := get(hc, selfURL); err == nil {
			t.Error("http answered after stop")
		}
	})
}

// TestOffloads sets and reads back TX checksum offload and GRO on a veth
// pair of a bare namespace.
func TestOffloads(t *testing.T) {
	testenv.RequireRoot(t)
	name := testName(t, "cvo") + "-x"
	ns, err := createNamedNS(name)
	if err != nil {
		t.Fatal(err)
	}
	h := &Host{Name: name, NS: ns}
	t.Cleanup(func() {
		deleteLinks(ns)
		ns.Close()
		if err := removeNamedNS(name); err != nil {
			t.Error(err)
		}
	})
	err = h.Do(func() error {
		return netlink.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "t0", TxQLen: -1}, PeerName: "t1"})
	})
	if err != nil {
		t.Fatal(err)
	}
	type op struct {
		set  func(string, bool) error
		get  func(string) (bool, error)
		name string
	}
	txcsum := op{SetTxChecksumOffload, TxChecksumOffload, "tx-checksumming"}
	gro := op{SetGRO, GRO, "gro"}
	for _, tc := range []struct {
		op op
		on bool
	}{
		{txcsum, false}, {txcsum, true}, {txcsum, false},
		{gro, true}, {gro, false}, {gro, true},
	} {
		t.Run(fmt.Sprintf("%s=%v", tc.op.name, tc.on), func(t *testing.T) {
			var got bool
			err := h.Do(func() (err error) {
				if err := tc.op.set("t0", tc.on); err != nil {
					return err
				}
				got, err = tc.op.get("t0")
				return err
			})
			if err != nil || got != tc.on {
				t.Errorf("read back %v (%v), want %v", got, err, tc.on)
			}
		})
	}
	err = h.Do(func() error {
		if _, err := TxChecksumOffload("nosuchif"); !errors.Is(err, unix.ENODEV) {
			return fmt.Errorf("unknown interface: %v, want ENODEV", err)
		}
		if err := SetGRO("an-interface-name-too-long", true); err == nil {
			return errors.New("long name: no error")
		}
		return nil
	})
	if err != nil {
		t.Error(err)
	}
}

// BenchmarkDo measures a round trip into a namespace and back.
func BenchmarkDo(b *testing.B) {
	l := UpForTest(b, Options{Backends: 1, NoServers: true})
	b.ReportAllocs()
	for b.Loop() {
		if err := l.Client.Do(func() error { return nil }); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkConnect measures a TCP connection from the client to a backend
// through the router: connect, first byte, close.
func BenchmarkConnect(b *testing.B) {
	l := UpForTest(b, Options{Backends: 1, NoServers: true})
	be := l.Backends[0]
	ln, err := be.Listen("tcp4", ":9000")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Write([]byte{1})
			c.Close()
		}
	}()
	addr := netip.AddrPortFrom(be.Addr, 9000).String()
	var one [1]byte
	b.ReportAllocs()
	for b.Loop() {
		c, err := l.Client.Dial("tcp4", addr)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(c, one[:]); err != nil {
			b.Fatal(err)
		}
		c.Close()
	}
}

// BenchmarkUpDown measures making and removing a default lab.
func BenchmarkUpDown(b *testing.B) {
	testenv.RequireRoot(b)
	b.ReportAllocs()
	for b.Loop() {
		l, err := Up(context.Background(), Options{})
		if err != nil {
			b.Fatal(err)
		}
		if err := l.Down(); err != nil {
			b.Fatal(err)
		}
	}
}
