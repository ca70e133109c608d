package health

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"
)

const probeTimeout = 300 * time.Millisecond

// slack bounds how late a timed-out probe may return.
const slack = 700 * time.Millisecond

func mustAddr(t *testing.T, s string) netip.AddrPort {
	t.Helper()
	a, err := netip.ParseAddrPort(s)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// closedPort returns a loopback address of the given network with nothing
// listening on it.
func closedPort(t *testing.T, network string) netip.AddrPort {
	t.Helper()
	var a string
	if network == "udp" {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		a = pc.LocalAddr().String()
		pc.Close()
	} else {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		a = l.Addr().String()
		l.Close()
	}
	return mustAddr(t, a)
}

// silentTCP accepts connections and never writes to them.
func silentTCP(t *testing.T) netip.AddrPort {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	})
	return mustAddr(t, l.Addr().String())
}

// udpServer answers each datagram with reply(datagram); nil reply: silence.
func udpServer(t *testing.T, reply func([]byte) []byte) netip.AddrPort {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 2048)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			if r := reply(buf[:n]); r != nil {
				pc.WriteTo(r, from)
			}
		}
	}()
	return mustAddr(t, pc.LocalAddr().String())
}

func httpHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/ok", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "status: all good\n") })
	mux.HandleFunc("/fail", func(w http.ResponseWriter, r *http.Request) { http.Error(w, "broken", 503) })
	mux.HandleFunc("/moved", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/fail", http.StatusFound) })
	return mux
}

func TestProbe(t *testing.T) {
	tcpL, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer tcpL.Close()
	go func() {
		for {
			c, err := tcpL.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	tcpAddr := mustAddr(t, tcpL.Addr().String())

	hs := httptest.NewServer(httpHandler())
	defer hs.Close()
	httpAddr := mustAddr(t, hs.Listener.Addr().String())
	tlsS := httptest.NewTLSServer(httpHandler())
	defer tlsS.Close()
	httpsAddr := mustAddr(t, tlsS.Listener.Addr().String())

	echo := udpServer(t, func(b []byte) []byte { return append([]byte("echo "), b...) })
	mute := udpServer(t, func([]byte) []byte { return nil })
	silent := silentTCP(t)
	refusedTCP := closedPort(t, "tcp")
	refusedUDP := closedPort(t, "udp")

	spec := func(s Spec) Spec { s.Timeout = probeTimeout; return s }
	httpSpec := func(k Kind, path string, status int, body string) Spec {
		return spec(Spec{Kind: k, Path: path, ExpectStatus: status, ExpectBody: body})
	}
	udp := func(send, expect string) Spec {
		return spec(Spec{Kind: KindUDP, Send: []byte(send), Expect: []byte(expect)})
	}
	exe := func(argv ...string) Spec { return spec(Spec{Kind: KindExec, Command: argv}) }
	envScript := `test "$CULVERT_BACKEND_ADDR" = 127.0.0.1 && test "$CULVERT_BACKEND_PORT" = 8081`

	tests := []struct {
		name    string
		addr    netip.AddrPort
		spec    Spec
		wantErr error  // errors.Is target, or
		wantMsg string // substring of the error; both empty: healthy
		timeout bool   // the probe must have run into Timeout
	}{
		{name: "tcp up", addr: tcpAddr, spec: spec(Spec{})},
		{name: "tcp port override", addr: netip.AddrPortFrom(tcpAddr.Addr(), 1), spec: spec(Spec{Port: tcpAddr.Port()})},
		{name: "tcp refused", addr: refusedTCP, spec: spec(Spec{}), wantMsg: "connection refused"},

		{name: "http up", addr: httpAddr, spec: httpSpec(KindHTTP, "/ok", 0, "")},
		{name: "http body", addr: httpAddr, spec: httpSpec(KindHTTP, "/ok", 200, "all good")},
		{name: "http wrong body", addr: httpAddr, spec: httpSpec(KindHTTP, "/ok", 200, "degraded"), wantErr: ErrBody},
		{name: "http wrong status", addr: httpAddr, spec: httpSpec(KindHTTP, "/fail", 0, ""), wantErr: ErrStatus},
		{name: "http not found", addr: httpAddr, spec: httpSpec(KindHTTP, "/nope", 0, ""), wantMsg: "404"},
		{name: "http expected 503", addr: httpAddr, spec: httpSpec(KindHTTP, "/fail", 503, "broken")},
		{name: "http redirect not followed", addr: httpAddr, spec: httpSpec(KindHTTP, "/moved", 302, "")},
		{name: "http refused", addr: refusedTCP, spec: httpSpec(KindHTTP, "/", 0, ""), wantMsg: "connection refused"},
		{name: "http never answers", addr: silent, spec: httpSpec(KindHTTP, "/", 0, ""), wantErr: context.DeadlineExceeded, timeout: true},

		{name: "https up", addr: httpsAddr, spec: httpSpec(KindHTTPS, "/ok", 200, "good")},
		{name: "https wrong status", addr: httpsAddr, spec: httpSpec(KindHTTPS, "/fail", 0, ""), wantErr: ErrStatus},
		{name: "https to plain http", addr: httpAddr, spec: httpSpec(KindHTTPS, "/ok", 0, ""), wantMsg: "https check"},
		{name: "https never answers", addr: silent, spec: httpSpec(KindHTTPS, "/", 0, ""), wantErr: context.DeadlineExceeded, timeout: true},

		{name: "udp echo", addr: echo, spec: udp("ping", "echo ping")},
		{name: "udp any reply", addr: echo, spec: udp("ping", "")},
		{name: "udp wrong reply", addr: echo, spec: udp("ping", "pong"), wantErr: ErrReply},
		{name: "udp refused", addr: refusedUDP, spec: udp("ping", ""), wantMsg: "connection refused"},
		{name: "udp never answers", addr: mute, spec: udp("ping", ""), wantErr: context.DeadlineExceeded, timeout: true},

		{name: "exec true", addr: tcpAddr, spec: exe("true")},
		{name: "exec false", addr: tcpAddr, spec: exe("false"), wantMsg: "exit status 1"},
		{name: "exec output in error", addr: tcpAddr, spec: exe("sh", "-c", "echo backend sad; exit 3"), wantMsg: "exit status 3: backend sad"},
		{name: "exec missing", addr: tcpAddr, spec: exe("/nonexistent/culvert-check"), wantMsg: "no such file"},
		{name: "exec env", addr: mustAddr(t, "127.0.0.1:80"), spec: func() Spec { s := exe("sh", "-c", envScript); s.Port = 8081; return s }()},
		{name: "exec env mismatch", addr: mustAddr(t, "127.0.0.1:80"), spec: exe("sh", "-c", envScript), wantMsg: "exit status 1"},
		{name: "exec timeout", addr: tcpAddr, spec: exe("sh", "-c", "sleep 5 & sleep 5"), wantErr: context.DeadlineExceeded, timeout: true},
	}
	c := New(Options{})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.spec.Validate(); err != nil {
				t.Fatalf("bad test spec: %v", err)
			}
			start := time.Now()
			err := c.Probe(context.Background(), Target{Addr: tt.addr, Spec: tt.spec})
			took := time.Since(start)
			if took > probeTimeout+slack {
				t.Errorf("probe took %v, Timeout %v", took, probeTimeout)
			}
			if tt.timeout && took < probeTimeout {
				t.Errorf("probe took %v, less than Timeout %v: did it time out?", took, probeTimeout)
			}
			switch {
			case tt.wantErr == nil && tt.wantMsg == "":
				if err != nil {
					t.Fatalf("Probe: %v", err)
				}
			case err == nil:
				t.Fatalf("Probe: healthy, want error")
			case tt.wantErr != nil && !errors.Is(err, tt.wantErr):
				t.Fatalf("Probe: %v, want %v", err, tt.wantErr)
			case !strings.Contains(err.Error(), tt.wantMsg):
				t.Fatalf("Probe: %v, want %q in it", err, tt.wantMsg)
			}
			prefix := fmt.Sprintf("%v check ", tt.spec.Kind)
			if err != nil && !strings.HasPrefix(err.Error(), prefix) {
				t.Errorf("error %q does not start with %q", err, prefix)
			}
		})
	}
}

// TestProbeCancel: cancelling the probe's context (target removed, checker
// stopped) ends it at once, well before its Timeout.
func TestProbeCancel(t *testing.T) {
	mute := udpServer(t, func([]byte) []byte { return nil })
	c := New(Options{})
	for _, tgt := range []Target{
		{Addr: mute, Spec: Spec{Kind: KindUDP, Send: []byte("x"), Interval: 20 * time.Second, Timeout: 10 * time.Second}},
		{Addr: silentTCP(t), Spec: Spec{Kind: KindHTTP, Interval: 20 * time.Second, Timeout: 10 * time.Second}},
		{Addr: mute, Spec: Spec{Kind: KindExec, Command: []string{"sleep", "10"}, Interval: 20 * time.Second, Timeout: 10 * time.Second}},
	} {
		t.Run(tgt.Spec.Kind.String(), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
			defer cancel()
			start := time.Now()
			err := c.Probe(ctx, tgt)
			if took := time.Since(start); err == nil || took > time.Second {
				t.Fatalf("Probe = %v after %v, want an error within 1s", err, took)
			}
		})
	}
}
