package appliance

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/culvert-lb/culvert/dataplane"
	"github.com/culvert-lb/culvert/internal/header"
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

// TestValidateInterfaces: one interface without a role, or two with one
// client and one server and the same number of queues.
func TestValidateInterfaces(t *testing.T) {
	two := func(r0, r1 string, q0, q1 int) []InterfaceSpec {
		return []InterfaceSpec{{Name: "up0", Queues: q0, Role: r0}, {Name: "down0", Queues: q1, Role: r1}}
	}
	for _, c := range []struct {
		name   string
		ifaces []InterfaceSpec
		want   string // "" means valid
	}{
		{"none", nil, ""},
		{"one-armed", []InterfaceSpec{{Name: "eth0", Queues: 4}}, ""},
		{"two-armed", two(RoleClient, RoleServer, 2, 2), ""},
		{"two-armed, server first", two(RoleServer, RoleClient, 0, 1), ""},
		{"lone interface with a role", []InterfaceSpec{{Name: "eth0", Role: RoleClient}}, `interfaces[0].role: "client", but a lone interface faces both sides`},
		{"two without roles", two("", "", 1, 1), `interfaces[0].role: "": with two interfaces, want "client" or "server"`},
		{"unknown role", two(RoleClient, "backend", 1, 1), `interfaces[1].role: "backend"`},
		{"two clients", two(RoleClient, RoleClient, 1, 1), `interfaces[1].role: "client" is interfaces[0] too`},
		{"queue counts differ", two(RoleClient, RoleServer, 2, 4), "interfaces[1].queues: 4, interfaces[0] has 2"},
		{"same name twice", []InterfaceSpec{{Name: "eth0", Role: RoleClient}, {Name: "eth0", Role: RoleServer}}, `interfaces[1].name: "eth0" is interfaces[0] too`},
		{"three", append(two(RoleClient, RoleServer, 1, 1), InterfaceSpec{Name: "eth2"}), "interfaces: 3 listed, at most 2"},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := Default("nat")
			s.Interfaces = c.ifaces
			err := s.Validate()
			if c.want == "" {
				if err != nil {
					t.Fatalf("valid spec refused: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want %q", err, c.want)
			}
		})
	}
}

// TestParseRoles: the YAML key role reaches the Spec and survives Marshal.
func TestParseRoles(t *testing.T) {
	y := strings.Replace(goodYAML, "  - name: veth0\n    queues: 1\n",
		"  - name: veth0\n    queues: 1\n    role: client\n  - name: veth1\n    queues: 1\n    role: server\n", 1)
	s, err := Parse("two.yaml", []byte(y))
	if err != nil {
		t.Fatal(err)
	}
	want := []InterfaceSpec{{Name: "veth0", Queues: 1, Role: RoleClient}, {Name: "veth1", Queues: 1, Role: RoleServer}}
	if len(s.Interfaces) != 2 || s.Interfaces[0] != want[0] || s.Interfaces[1] != want[1] {
		t.Fatalf("interfaces %+v, want %+v", s.Interfaces, want)
	}
	b, err := Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	again, err := Parse("again.yaml", b)
	if err != nil || again.Interfaces[1] != want[1] {
		t.Fatalf("round trip: %v %+v\n%s", err, again, b)
	}
	if _, err := Parse("bad.yaml", []byte(strings.Replace(y, "role: server", "role: backends", 1))); err == nil ||
		!strings.Contains(err.Error(), `bad.yaml:8:5: interfaces[1].role: "backends"`) {
		t.Fatalf("bad role: %v", err)
	}
}

// TestBuildLinks: the Builder carries each interface's MAC and MTU, the
// client link and every backend's link into the dataplane Config.
func TestBuildLinks(t *testing.T) {
	s := Default("dsr")
	client, server := header.MAC{2, 0, 0, 0, 0, 1}, header.MAC{2, 0, 0, 0, 0, 2}
	routed := netip.MustParseAddr("198.18.0.13")
	l := Links{
		Self:       client,
		Interfaces: []dataplane.Link{{MAC: server, MTU: 1520}, {MAC: client, MTU: 1500}},
		ClientLink: 1,
		BackendLink: func(a netip.Addr) uint8 {
			if a == routed {
				return 1 // behind the router on the client side
			}
			return 0
		},
	}
	c, err := NewBuilder().Build(&s, l)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Links) != 2 || c.Links[0].MAC != server || c.Links[1].MTU != 1500 || c.ClientLink != 1 || c.MAC != server {
		t.Fatalf("links %+v, client link %d, mac %x", c.Links, c.ClientLink, c.MAC)
	}
	for _, b := range c.Backends {
		want := uint8(0)
		if b.Addr == routed.As4() {
			want = 1
		}
		if b.Link != want {
			t.Errorf("backend %v on link %d, want %d", b.Addr, b.Link, want)
		}
	}
	// One-armed: no links, Self is the MAC.
	c, err = NewBuilder().Build(&s, Links{Self: client})
	if err != nil || len(c.Links) != 0 || c.MAC != client {
		t.Fatalf("one-armed: %v, links %+v, mac %x", err, c.Links, c.MAC)
	}
}
