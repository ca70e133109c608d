package appliance

import (
	"strings"
	"testing"
	"time"
)

const goodYAML = `
interfaces:
  - name: veth0
    queues: 1
gateway: 198.18.0.1
hash_key: 63756c766572742d64656661756c7421
local_addrs: [198.18.2.1]
services:
  - name: web
    vip: 198.18.1.1
    protocol: tcp
    port: 80
    mode: nat
    persistence: 300s
    backends:
      - {address: 198.19.0.11, port: 8080}
      - {address: 198.19.0.12, port: 8080, weight: 2}
`

func TestParseGood(t *testing.T) {
	s, err := Parse("good.yaml", []byte(goodYAML))
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Services) != 1 || s.Services[0].Persistence.Seconds() != 300 || s.Services[0].Backends[0].Weight != 1 ||
		s.Services[0].Backends[1].Weight != 2 || s.Interfaces[0].Name != "veth0" {
		t.Fatalf("parsed %+v", s)
	}
}

func TestParseErrorsHaveLocations(t *testing.T) {
	tests := []struct {
		name, yaml string
		want       []string
	}{
		{"unknown key", strings.Replace(goodYAML, "    mode: nat", "    mode: nat\n    modee: dsr", 1),
			[]string{`bad.yaml:14:5: unknown key "modee"`}},
		{"bad address", strings.Replace(goodYAML, "198.19.0.12", "198.19.0.300", 1),
			[]string{`bad.yaml:17:10: services[0].backends[1].address: "198.19.0.300" is not an IP address`}},
		{"wrong type", strings.Replace(goodYAML, "port: 80", "port: eighty", 1),
			[]string{"bad.yaml:12:1: cannot unmarshal !!str `eighty`: want int"}},
		{"syntax", goodYAML + "  - [\n", []string{"bad.yaml:"}},
		{"bad mode and weight", strings.Replace(strings.Replace(goodYAML, "mode: nat", "mode: tunnel", 1), "weight: 2", "weight: -1", 1),
			[]string{"bad.yaml:13:5: services[0].mode:", "bad.yaml:17:44: services[0].backends[1].weight: -1 is outside"}},
		{"empty pool", strings.Split(goodYAML, "    backends:")[0], []string{"bad.yaml:9:5: services[0].backends: empty pool"}},
		{"empty file", "", []string{"bad.yaml:1:1: empty configuration"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("bad.yaml", []byte(tt.yaml))
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not contain %q:\n%v", w, err)
				}
			}
		})
	}
}

func TestMarshalRoundTrip(t *testing.T) {
	for _, mode := range []string{"nat", "dsr", "ipip"} {
		s := Default(mode)
		s.Interfaces = []InterfaceSpec{{Name: "cv1-eth0", Queues: 2}}
		s.Services[0].Persistence = 90 * 1e9
		b, err := Marshal(&s)
		if err != nil {
			t.Fatal(err)
		}
		got, err := Parse("round.yaml", b)
		if err != nil {
			t.Fatalf("%s: %v\n%s", mode, err, b)
		}
		again, _ := Marshal(got)
		if string(again) != string(b) {
			t.Fatalf("%s: round trip differs:\n%s\n---\n%s", mode, b, again)
		}
	}
}

// TestExampleConfig keeps docs/culvert.yaml valid.
func TestExampleConfig(t *testing.T) {
	if _, err := LoadFile("../docs/culvert.yaml"); err != nil {
		t.Fatal(err)
	}
}

func TestParseHealthCheck(t *testing.T) {
	y := strings.Replace(goodYAML, "    persistence: 300s\n", "    persistence: 300s\n    health_check: {type: http, interval: 1s, timeout: 500ms, rise: 2, fall: 3, path: /healthz}\n", 1)
	s, err := Parse("hc.yaml", []byte(y))
	if err != nil {
		t.Fatal(err)
	}
	h := s.Services[0].HealthCheck
	if h == nil || h.Interval != time.Second || h.Fall != 3 || h.Path != "/healthz" {
		t.Fatalf("health check %+v", h)
	}
	b, _ := Marshal(s)
	if again, err := Parse("again.yaml", b); err != nil || again.Services[0].HealthCheck.Timeout != 500*time.Millisecond {
		t.Fatalf("round trip: %v", err)
	}
	bad := strings.Replace(y, "type: http", "type: smtp", 1)
	if _, err := Parse("hc.yaml", []byte(bad)); err == nil || !strings.Contains(err.Error(), "hc.yaml:15:20: services[0].health_check.type") ||
		strings.Count(err.Error(), "\n") != 0 {
		t.Fatalf("bad type, reported once: %v", err)
	}
	bad = strings.Replace(y, "timeout: 500ms", "timeout: 2s", 1)
	if _, err := Parse("hc.yaml", []byte(bad)); err == nil || !strings.Contains(err.Error(), "health_check") {
		t.Fatalf("timeout above interval: %v", err)
	}
}

func TestParseEnabled(t *testing.T) {
	y := strings.Replace(goodYAML, "{address: 198.19.0.11, port: 8080}", "{address: 198.19.0.11, port: 8080, enabled: false}", 1)
	s, err := Parse("en.yaml", []byte(y))
	if err != nil {
		t.Fatal(err)
	}
	if !s.Services[0].Backends[0].Disabled || s.Services[0].Backends[1].Disabled {
		t.Fatalf("enabled not parsed: %+v", s.Services[0].Backends)
	}
	c, err := NewBuilder().Build(s, Links{})
	if err != nil {
		t.Fatal(err)
	}
	if c.Backends[0].Weight != 0 || c.Backends[1].Weight != 2 {
		t.Fatalf("disabled backend weight %d (want 0), other %d", c.Backends[0].Weight, c.Backends[1].Weight)
	}
	b, _ := Marshal(s)
	if !strings.Contains(string(b), "enabled: false") {
		t.Fatalf("marshal lost enabled: false:\n%s", b)
	}
}

func TestParseTimeoutsAndEndpoints(t *testing.T) {
	y := "control_socket: /run/x.sock\nmetrics_listen: 127.0.0.1:9100\ntimeouts: {tcp_established: 1h, udp: 30s}\n" + goodYAML
	s, err := Parse("t.yaml", []byte(y))
	if err != nil {
		t.Fatal(err)
	}
	if s.Timeouts.TCPEstablished != time.Hour || s.Timeouts.UDP != 30*time.Second || s.ControlSocket != "/run/x.sock" || s.MetricsListen != "127.0.0.1:9100" {
		t.Fatalf("parsed %+v %q %q", s.Timeouts, s.ControlSocket, s.MetricsListen)
	}
	b, _ := Marshal(s)
	if again, err := Parse("again.yaml", b); err != nil || again.Timeouts != s.Timeouts || again.MetricsListen != s.MetricsListen {
		t.Fatalf("round trip: %v\n%s", err, b)
	}
	if _, err := Parse("t.yaml", []byte("timeouts: {udp: soon}\n"+goodYAML)); err == nil || !strings.Contains(err.Error(), "t.yaml:1:12: timeouts.udp") {
		t.Fatalf("bad timeout: %v", err)
	}
}
