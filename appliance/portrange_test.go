package appliance

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/culvert-lb/culvert/nic"
)

// rangeYAML is goodYAML with the web service made a port range whose
// backends keep the client's port.
var rangeYAML = strings.NewReplacer(
	"    port: 80\n", "    port: 8000\n    port_end: 8009\n",
	", port: 8080}", "}",
).Replace(goodYAML)

func TestParsePortRange(t *testing.T) {
	s, err := Parse("range.yaml", []byte(rangeYAML))
	if err != nil {
		t.Fatal(err)
	}
	sv := s.Services[0]
	if sv.Port != 8000 || sv.PortEnd != 8009 || sv.Backends[0].Port != 0 {
		t.Fatalf("parsed %+v", sv)
	}
	b, err := Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "port_end: 8009") {
		t.Fatalf("marshal lost port_end:\n%s", b)
	}
	again, err := Parse("again.yaml", b)
	if err != nil || again.Services[0].PortEnd != 8009 || again.Services[0].Port != 8000 {
		t.Fatalf("round trip: %v %+v", err, again)
	}
	// A single-port service writes no port_end.
	single, _ := Parse("good.yaml", []byte(goodYAML))
	if b, _ := Marshal(single); strings.Contains(string(b), "port_end") {
		t.Fatalf("single port marshals port_end:\n%s", b)
	}
}

func TestParsePortRangeErrors(t *testing.T) {
	tests := []struct {
		name, yaml, want string
	}{
		{"below port", strings.Replace(rangeYAML, "port_end: 8009", "port_end: 7999", 1),
			"bad.yaml:13:5: services[0].port_end: 7999 is below port 8000"},
		{"not a port", strings.Replace(rangeYAML, "port_end: 8009", "port_end: 70000", 1),
			"bad.yaml:13:5: services[0].port_end: 70000 is not a port"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("bad.yaml", []byte(tt.yaml))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestValidatePortRange(t *testing.T) {
	ranged := func() Spec {
		s := Default("nat")
		s.Services[0].Port, s.Services[0].PortEnd = 8000, 8009
		for i := range s.Services[0].Backends {
			s.Services[0].Backends[i].Port = 0
		}
		return s
	}
	tests := []struct {
		name   string
		change func(*Spec)
		want   string // "" = valid
	}{
		{"range", func(*Spec) {}, ""},
		{"range of one port", func(s *Spec) { s.Services[0].PortEnd = 8000 }, ""},
		{"nat fixed backend port", func(s *Spec) { s.Services[0].Backends[0].Port = 8080 }, ""},
		{"end below port", func(s *Spec) { s.Services[0].PortEnd = 7000 }, "services[0].port_end: 7000 is below port 8000"},
		{"overlap", func(s *Spec) {
			o := s.Services[0]
			o.Port, o.PortEnd = 8009, 8020
			s.Services = append(s.Services, o)
		}, "services[2]: ports overlap services[0]"},
		{"single port inside", func(s *Spec) {
			o := s.Services[0]
			o.Port, o.PortEnd = 8005, 0
			s.Services = append(s.Services, o)
		}, "services[2]: ports overlap services[0]"},
		{"other protocol may overlap", func(s *Spec) { s.Services[1].Port, s.Services[1].PortEnd = 8000, 8009 }, ""},
		{"dsr cannot change ports", func(s *Spec) {
			s.Services[0].Mode = "dsr"
			s.Services[0].Backends[0].Port = 8000
		}, "dsr mode cannot change the port"},
		{"too many steered ports", func(s *Spec) {
			s.Services[0].Port, s.Services[0].PortEnd = 1, 65535
			o := s.Services[0]
			o.VIP = netip.MustParseAddr("198.18.1.2")
			s.Services = append(s.Services, o)
		}, "steering program takes at most"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := ranged()
			tt.change(&s)
			err := s.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("error %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestSteerServicesExpandsRanges(t *testing.T) {
	s := Default("nat")
	s.Services[0].Port, s.Services[0].PortEnd = 8000, 8002
	got, err := steerServices(&s)
	if err != nil {
		t.Fatal(err)
	}
	vip := s.Services[0].VIP.As4()
	want := []nic.SteerService{
		{Addr: vip, Port: 8000, Proto: 6}, {Addr: vip, Port: 8001, Proto: 6}, {Addr: vip, Port: 8002, Proto: 6},
		{Addr: vip, Port: 7, Proto: 17},
	}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("entry %d: got %v, want %v", i, got[i], want[i])
		}
	}
	// The whole port space on one VIP fits; on two it does not.
	s.Services[0].Port, s.Services[0].PortEnd = 1, 65535
	s.Services = s.Services[:1]
	if got, err := steerServices(&s); err != nil || len(got) != 65535 {
		t.Fatalf("full range: %d entries, %v", len(got), err)
	}
	s.Services = append(s.Services, s.Services[0])
	s.Services[1].Protocol = "udp"
	if _, err := steerServices(&s); err == nil {
		t.Fatal("131070 steering entries accepted")
	}
}

// TestBuilderRangeIDs: a service's ID follows its whole key, range
// included: changing the range is a new service.
func TestBuilderRangeIDs(t *testing.T) {
	b := NewBuilder()
	s := Default("nat")
	s.Services[0].Port, s.Services[0].PortEnd = 8000, 8009
	c1, err := b.Build(&s, Links{})
	if err != nil {
		t.Fatal(err)
	}
	if sv := c1.Services[0]; sv.Port != 8000 || sv.PortEnd != 8009 {
		t.Fatalf("built %+v", sv)
	}
	s.Services[0].PortEnd = 8019
	c2, err := b.Build(&s, Links{})
	if err != nil {
		t.Fatal(err)
	}
	if len(c2.Services) != 3 || !c2.Services[0].Removed || c2.Services[2].PortEnd != 8019 {
		t.Fatalf("services after range change: %+v", c2.Services)
	}
}
