package appliance

import (
	"net/netip"
	"strings"
	"testing"
)

func TestDefaultValidates(t *testing.T) {
	for _, mode := range []string{"nat", "dsr", "ipip"} {
		s := Default(mode)
		if err := s.Validate(); err != nil {
			t.Errorf("Default(%q): %v", mode, err)
		}
	}
}

func TestValidateReportsEveryProblem(t *testing.T) {
	s := Default("nat")
	s.HashKey = "short"
	s.Services[0].Protocol = "sctp"
	s.Services[1].Mode = "tunnel"
	s.Services[1].Backends[0].Address = netip.MustParseAddr("2001:2::1")
	s.LocalAddrs = append(s.LocalAddrs, netip.MustParseAddr("2001:2::2"))
	err := s.Validate()
	if err == nil {
		t.Fatal("invalid spec validated")
	}
	for _, want := range []string{
		"hash_key:",
		"services[0].protocol:",
		"services[1].mode:",
		"services[1].backends[0].address: 2001:2::1 is not an IPv4 address",
		"local_addrs[2]:",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %q:\n%v", want, err)
		}
	}
}

func TestValidateResolvedRules(t *testing.T) {
	dup := Default("nat")
	dup.Services = append(dup.Services, dup.Services[0])
	if err := dup.Validate(); err == nil || !strings.Contains(err.Error(), "defined twice") {
		t.Errorf("duplicate service: %v", err)
	}
	dsr := Default("dsr")
	dsr.Services[0].Backends[0].Port = 8080
	if err := dsr.Validate(); err == nil || !strings.Contains(err.Error(), "cannot change the port") {
		t.Errorf("dsr port change: %v", err)
	}
	vipLocal := Default("nat")
	vipLocal.LocalAddrs = append(vipLocal.LocalAddrs, vipLocal.Services[0].VIP)
	if err := vipLocal.Validate(); err == nil || !strings.Contains(err.Error(), "also a local address") {
		t.Errorf("VIP as local address: %v", err)
	}
}

// TestBuilderKeepsIDs: IDs survive rebuilds; a removed backend's ID is
// marked removed, never reused.
func TestBuilderKeepsIDs(t *testing.T) {
	b := NewBuilder()
	s := Default("nat")
	c1, err := b.Build(&s, Links{})
	if err != nil {
		t.Fatal(err)
	}
	gone := s.Services[0].Backends[0]
	s.Services[0].Backends = s.Services[0].Backends[1:]
	s.Services[1].Backends = s.Services[1].Backends[1:]
	s.Services[0].Backends = append(s.Services[0].Backends, BackendSpec{Address: netip.MustParseAddr("198.18.0.14"), Port: 80, Weight: 1})
	c2, err := b.Build(&s, Links{})
	if err != nil {
		t.Fatal(err)
	}
	if len(c2.Backends) != len(c1.Backends)+1 {
		t.Fatalf("backends %d -> %d, want one more", len(c1.Backends), len(c2.Backends))
	}
	for id := range c1.Backends {
		a, z := c1.Backends[id], c2.Backends[id]
		if a.Addr != z.Addr || a.Port != z.Port {
			t.Fatalf("ID %d changed owner: %v:%d -> %v:%d", id, a.Addr, a.Port, z.Addr, z.Port)
		}
		removed := a.Addr == gone.Address.As4() // first backend of both services
		if z.Removed != removed {
			t.Fatalf("ID %d removed=%v, want %v", id, z.Removed, removed)
		}
	}
	// A failed build leaves the IDs alone.
	bad := s
	bad.HashKey = "x"
	if _, err := b.Build(&bad, Links{}); err == nil {
		t.Fatal("bad spec built")
	}
	c3, err := b.Build(&s, Links{})
	if err != nil || len(c3.Backends) != len(c2.Backends) {
		t.Fatalf("rebuild after failure: %v, %d backends", err, len(c3.Backends))
	}
}
