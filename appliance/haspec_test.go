package appliance

import (
	"fmt"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

const haYAML = goodYAML + `ha:
  unicast_peer: [198.18.0.3]
  vrrp_instances:
    - name: vi1
      virtual_router_id: 51
      priority: 150
      advert_int: 0.1
      preempt_delay: 2s
      track_interface: [{name: veth1, weight: 20}]
      track_service: [{name: web}]
  sync:
    listen: 198.18.0.2:8848
    peer: 198.18.0.3:8848
    key: 00112233445566778899aabbccddeeff
`

func TestParseHA(t *testing.T) {
	s, err := Parse("ha.yaml", []byte(haYAML))
	if err != nil {
		t.Fatal(err)
	}
	g := s.HA.Groups[0]
	if g.VirtualRouterID != 51 || g.Priority != 150 || g.AdvertInt != 100*time.Millisecond || g.PreemptDelay != 2*time.Second ||
		g.TrackInterface[0] != (TrackSpec{"veth1", 20}) || g.TrackService[0] != (TrackSpec{"web", 0}) {
		t.Errorf("group %+v", g)
	}
	if s.HA.Sync.Peer != netip.MustParseAddrPort("198.18.0.3:8848") || s.HA.UnicastPeers[0] != netip.MustParseAddr("198.18.0.3") {
		t.Errorf("ha %+v sync %+v", s.HA, s.HA.Sync)
	}
	if got := s.GroupVIPs(0); len(got) != 1 || got[0] != netip.MustParseAddr("198.18.1.1") {
		t.Errorf("GroupVIPs = %v", got)
	}
	if got := s.GroupLocals(0); len(got) != 1 || got[0] != netip.MustParseAddr("198.18.2.1") {
		t.Errorf("GroupLocals = %v", got)
	}
	// Marshal and Parse again: the same Spec.
	b, err := Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	s2, err := Parse("again.yaml", b)
	if err != nil {
		t.Fatalf("%v\n%s", err, b)
	}
	if !reflect.DeepEqual(s.HA, s2.HA) {
		t.Errorf("round trip:\n%+v\n%+v", s.HA, s2.HA)
	}
}

func TestParseHAErrors(t *testing.T) {
	for _, tc := range []struct {
		name, from, to string
		want           string
	}{
		{"priority 255", "priority: 150", "priority: 255", "ha.yaml:23:7: ha.vrrp_instances[0].priority: 255 is outside 1..254"},
		{"advert_int not a step of 10ms", "advert_int: 0.1", "advert_int: 15ms", "ha.vrrp_instances[0].advert_int: 15ms: want 10ms to 40.95s in steps of 10ms"},
		{"advert_int garbage", "advert_int: 0.1", "advert_int: soon", `ha.vrrp_instances[0].advert_int: "soon" is not a duration`},
		{"unknown service", "{name: web}", "{name: mail}", `ha.vrrp_instances[0].track_service[0].name: "mail" is no service's name`},
		{"short key", "key: 00112233445566778899aabbccddeeff", "key: 0011", "ha.sync.key: 2 bytes, want at least 16"},
		{"bad peer", "peer: 198.18.0.3:8848", "peer: 198.18.0.3", `ha.sync.peer: "198.18.0.3" is not an address:port`},
		{"vip of no service", "      advert_int: 0.1\n", "      advert_int: 0.1\n      virtual_ipaddress: [198.18.1.9]\n", "ha.vrrp_instances[0].virtual_ipaddress[0]: 198.18.1.9 is no service's VIP"},
		{"misspelt key", "      preempt_delay: 2s\n", "      preempt_dely: 2s\n", `unknown key "preempt_dely"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			y := strings.Replace(haYAML, tc.from, tc.to, 1)
			if y == haYAML {
				t.Fatalf("%q not in the YAML", tc.from)
			}
			_, err := Parse("ha.yaml", []byte(y))
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "ha.yaml:") {
				t.Errorf("error %v\nwant one containing %q with a location", err, tc.want)
			}
		})
	}
	// Two groups: each lists its VIPs and local addresses.
	two := strings.Replace(haYAML, "  sync:", `    - virtual_router_id: 52
      priority: 100
  sync:`, 1)
	_, err := Parse("ha.yaml", []byte(two))
	for _, want := range []string{"ha.vrrp_instances[0].virtual_ipaddress: empty", "ha.vrrp_instances[1].virtual_ipaddress: empty",
		"VIP 198.18.1.1 is in no group", "local address 198.18.2.1 is in no group"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("two groups without lists: error %v\nwant %q", err, want)
		}
	}
}

// TestGroupAddrChanges: a reload that adds a VIP or a local address
// changes what a lone group owns; groupAddrChanges names the group and its
// new lists, and nothing when they stay.
func TestGroupAddrChanges(t *testing.T) {
	a, err := Parse("ha.yaml", []byte(haYAML))
	if err != nil {
		t.Fatal(err)
	}
	b := *a
	if ch := groupAddrChanges(a, &b); ch != nil {
		t.Errorf("a spec differs from its copy: %+v", ch)
	}
	vip9, local9 := netip.MustParseAddr("198.18.1.9"), netip.MustParseAddr("198.18.2.9")
	b.Services = append(append([]ServiceSpec(nil), a.Services...), a.Services[0])
	b.Services[1].VIP = vip9
	ch := groupAddrChanges(&b, a)
	if len(ch) != 1 || ch[0].vrid != 51 || !slices.Equal(ch[0].vips, []netip.Addr{a.Services[0].VIP, vip9}) || !slices.Equal(ch[0].locals, a.LocalAddrs) {
		t.Errorf("a new VIP: %+v", ch)
	}
	if got := ch[0].all(); !slices.Equal(got, append([]netip.Addr{a.Services[0].VIP, vip9}, a.LocalAddrs...)) {
		t.Errorf("all() = %v", got)
	}
	c := *a
	c.LocalAddrs = append(append([]netip.Addr(nil), a.LocalAddrs...), local9)
	if ch := groupAddrChanges(&c, a); len(ch) != 1 || !slices.Equal(ch[0].locals, c.LocalAddrs) {
		t.Errorf("a new local address: %+v", ch)
	}
}

// TestPriorityChanges: a reload may change the groups' priorities and
// nothing else of the ha section.
func TestPriorityChanges(t *testing.T) {
	parse := func(edit func(string) string) *HASpec {
		t.Helper()
		s, err := Parse("ha.yaml", []byte(edit(haYAML)))
		if err != nil {
			t.Fatal(err)
		}
		return s.HA
	}
	same := func(y string) string { return y }
	old := parse(same)
	for _, tc := range []struct {
		name string
		new  *HASpec
		want []prioChange
		ok   bool
	}{
		{"unchanged", parse(same), nil, true},
		{"priority", parse(func(y string) string { return strings.Replace(y, "priority: 150", "priority: 50", 1) }), []prioChange{{51, 50}}, true},
		{"advert_int", parse(func(y string) string { return strings.Replace(y, "advert_int: 0.1", "advert_int: 0.2", 1) }), nil, false},
		{"priority and vrid", parse(func(y string) string {
			return strings.Replace(strings.Replace(y, "priority: 150", "priority: 50", 1), "virtual_router_id: 51", "virtual_router_id: 52", 1)
		}), nil, false},
		{"sync key", parse(func(y string) string { return strings.Replace(y, "key: 0011", "key: 9911", 1) }), nil, false},
		{"addresses", parse(func(y string) string {
			return strings.Replace(y, "priority: 150", "priority: 150\n      virtual_ipaddress: [198.18.1.1]\n      local_addrs: [198.18.2.1]", 1)
		}), nil, true},
		{"ha removed", nil, nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := priorityChanges(tc.new, old)
			if ok != tc.ok || !reflect.DeepEqual(got, tc.want) {
				t.Errorf("priorityChanges = %v %v, want %v %v", got, ok, tc.want, tc.ok)
			}
		})
	}
	if got, ok := priorityChanges(nil, nil); !ok || got != nil {
		t.Errorf("no ha on either side: %v %v", got, ok)
	}
}

// TestHATooManyVIPs: a VRRP advertisement carries at most 255 addresses,
// so a group that would own more (a lone group owns every VIP) is refused,
// at start and on reload alike.
func TestHATooManyVIPs(t *testing.T) {
	s, err := Parse("ha.yaml", []byte(haYAML))
	if err != nil {
		t.Fatal(err)
	}
	base := s.Services[0]
	for i := range 255 {
		sv := base
		sv.Name = fmt.Sprintf("extra%d", i)
		sv.VIP = netip.AddrFrom4([4]byte{198, 18, 16 + byte(i/200), byte(1 + i%200)})
		s.Services = append(s.Services, sv)
	}
	err = s.Validate()
	if err == nil || !strings.Contains(err.Error(), "ha.vrrp_instances[0].virtual_ipaddress: 256 VIPs") {
		t.Fatalf("256 VIPs in one group: %v", err)
	}
	s.Services = s.Services[:255]
	if err := s.Validate(); err != nil {
		t.Fatalf("255 VIPs in one group: %v", err)
	}
}
