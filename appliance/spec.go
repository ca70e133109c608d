package appliance

import (
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/culvert-lb/culvert/appliance/health"
	"github.com/culvert-lb/culvert/dataplane"
	"github.com/culvert-lb/culvert/dataplane/sched"
	"github.com/culvert-lb/culvert/nic"
)

// Spec is the operator's configuration of the balancer: plain values,
// validated as a whole. The zero Spec has no services.
type Spec struct {
	// Interfaces the dataplane runs on, each with its AF_XDP queues: one
	// (one-armed: clients and backends through the same interface) or two
	// (two-armed: one with Role "client", one with Role "server"), with
	// the same number of queues.
	Interfaces []InterfaceSpec
	// Gateway is the next hop toward clients (nat replies, ICMP answers),
	// reached through the client interface; its MAC comes from the
	// kernel's neighbour table.
	Gateway netip.Addr
	// MaxFlows is the connection table's fixed capacity; 0 means 1<<20.
	MaxFlows int
	// Timeouts of the connection table; zero fields take IPVS's defaults.
	Timeouts TimeoutsSpec
	// ControlSocket is the control API's Unix socket; empty means
	// /run/culvert/culvert.sock. MetricsListen is the address of the
	// Prometheus endpoint; empty means none. `culvert run` flags override
	// both.
	ControlSocket, MetricsListen string
	// HashKey keys backend selection: 32 hex digits. Both members of an HA
	// pair (and every ECMP peer) must share it.
	HashKey string
	// LocalAddrs are the full-NAT source addresses (never kernel addresses).
	LocalAddrs []netip.Addr
	// EncapSource is the outer source address of ipip services.
	EncapSource netip.Addr
	// MTU of every dataplane link; 0 means each interface's own (the
	// daemon reads it), or 1500 where there is no interface.
	MTU int
	// MaglevSize is the Maglev table size (prime); 0 means 65537.
	MaglevSize int
	Services   []ServiceSpec
	// HA, when set, makes the appliance a member of an HA pair.
	HA *HASpec
	// BusyPoll opens the AF_XDP sockets with preferred busy polling
	// (nic.XDPConfig.BusyPoll): the workers run the interfaces' NAPI
	// themselves. Set napi_defer_hard_irqs and gro_flush_timeout on the
	// interfaces with it (README).
	BusyPoll bool
	// WorkerCPUs pins worker q (queue q of every interface) to
	// WorkerCPUs[q mod len]; empty pins worker q to CPU q mod the CPU
	// count. Operators list CPUs kept free of other work (isolcpus).
	WorkerCPUs []int
}

// TimeoutsSpec are the connection table's idle timeouts.
type TimeoutsSpec struct {
	TCPSyn, TCPEstablished, TCPFinWait, TCPTimeWait, TCPClose, UDP, UDPUnreplied time.Duration
}

// InterfaceSpec is one dataplane interface.
type InterfaceSpec struct {
	Name   string
	Queues int // AF_XDP sockets, one per NIC queue from 0; 0 means 1
	// Role says which side the interface faces when there are two:
	// RoleClient (toward the clients and the Gateway) or RoleServer. A lone
	// interface faces both sides and has no role ("").
	Role string
}

// Interface roles (InterfaceSpec.Role) of a two-armed appliance.
const (
	RoleClient = "client"
	RoleServer = "server"
)

// MaxInterfaces is the most dataplane interfaces a Spec may list: two-armed.
const MaxInterfaces = 2

// ServiceSpec is one virtual service, named as keepalived's virtual_server
// and IPVS would: VIP, protocol, port or port range, forwarding mode,
// scheduler.
type ServiceSpec struct {
	Name     string
	VIP      netip.Addr
	Protocol string // "tcp" or "udp"
	Port     uint16
	// PortEnd, when set, makes the service own every port Port..PortEnd;
	// zero is the single port Port. A nat backend without a port then
	// receives each flow on the port the client chose.
	PortEnd     uint16
	Mode        string // "nat", "dsr" or "ipip"
	Scheduler   string // "maglev" (default), "wrr" or "lc"
	Persistence time.Duration
	// HealthCheck, when set, probes every backend from the appliance's
	// kernel stack; a backend that fails it gets no new flows until it
	// passes again.
	HealthCheck *health.Spec
	Backends    []BackendSpec
}

// ports is Port, or Port-PortEnd for a range.
func (sv *ServiceSpec) ports() string {
	if sv.PortEnd > sv.Port {
		return fmt.Sprintf("%d-%d", sv.Port, sv.PortEnd)
	}
	return fmt.Sprint(sv.Port)
}

// BackendSpec is one real server of a service.
type BackendSpec struct {
	Address netip.Addr
	Port    uint16 // nat only; dsr and ipip keep the service port
	Weight  uint32 // 0 drains
	// Disabled drains the backend without losing its weight: existing
	// flows continue, no new ones (keepalived's inhibit, HAProxy's drain).
	Disabled bool
}

// DefaultHashKey is the hash key of Default; production configurations set
// their own.
const DefaultHashKey = "63756c766572742d64656661756c7421"

// Default is the built-in configuration the demo and the lab run, on the
// lab's address plan (bench/lab): one VIP, 198.18.1.1, with an HTTP service
// on TCP port 80 and an echo service on UDP port 7, each balanced over three
// backends on the server segment (198.18.0.11-13) with weights 1, 1 and 2;
// SNAT addresses 198.18.2.1-2; the router, 198.18.0.1, is the gateway toward
// clients (198.19.0.0/24). mode is nat, dsr or ipip.
func Default(mode string) Spec {
	backends := func(port uint16) []BackendSpec {
		if mode != "nat" {
			port = 0 // dsr and ipip keep the service port
		}
		return []BackendSpec{
			{Address: netip.MustParseAddr("198.18.0.11"), Port: port, Weight: 1},
			{Address: netip.MustParseAddr("198.18.0.12"), Port: port, Weight: 1},
			{Address: netip.MustParseAddr("198.18.0.13"), Port: port, Weight: 2},
		}
	}
	return Spec{
		Gateway:     netip.MustParseAddr("198.18.0.1"),
		HashKey:     DefaultHashKey,
		LocalAddrs:  []netip.Addr{netip.MustParseAddr("198.18.2.1"), netip.MustParseAddr("198.18.2.2")},
		EncapSource: netip.MustParseAddr("198.18.2.100"),
		Services: []ServiceSpec{
			{Name: "web", VIP: netip.MustParseAddr("198.18.1.1"), Protocol: "tcp", Port: 80, Mode: mode, Backends: backends(80)},
			{Name: "echo", VIP: netip.MustParseAddr("198.18.1.1"), Protocol: "udp", Port: 7, Mode: mode, Backends: backends(7)},
		},
	}
}

// Validate reports every problem in s, each with its location, joined.
func (s *Spec) Validate() error {
	var errs []error
	add := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if len(s.Interfaces) > MaxInterfaces {
		add("interfaces: %d listed, at most %d (one-armed or two-armed)", len(s.Interfaces), MaxInterfaces)
	}
	roles := map[string]int{}
	names := map[string]int{}
	for i, ifc := range s.Interfaces {
		if ifc.Name == "" || len(ifc.Name) > 15 {
			add("interfaces[%d].name: %q is not an interface name", i, ifc.Name)
		} else if j, dup := names[ifc.Name]; dup {
			add("interfaces[%d].name: %q is interfaces[%d] too", i, ifc.Name, j)
		} else {
			names[ifc.Name] = i
		}
		if ifc.Queues < 0 || ifc.Queues > 256 {
			add("interfaces[%d].queues: %d is outside 0..256", i, ifc.Queues)
		}
		switch {
		case len(s.Interfaces) == 1 && ifc.Role != "":
			add("interfaces[%d].role: %q, but a lone interface faces both sides: leave it empty", i, ifc.Role)
		case len(s.Interfaces) == 2 && ifc.Role != RoleClient && ifc.Role != RoleServer:
			add("interfaces[%d].role: %q: with two interfaces, want %q or %q", i, ifc.Role, RoleClient, RoleServer)
		case len(s.Interfaces) == 2:
			if j, dup := roles[ifc.Role]; dup {
				add("interfaces[%d].role: %q is interfaces[%d] too: want one client and one server", i, ifc.Role, j)
			}
			roles[ifc.Role] = i
		}
	}
	if len(s.Interfaces) == 2 && max(s.Interfaces[0].Queues, 1) != max(s.Interfaces[1].Queues, 1) {
		add("interfaces[1].queues: %d, interfaces[0] has %d: both need the same number (each worker takes one of each)",
			max(s.Interfaces[1].Queues, 1), max(s.Interfaces[0].Queues, 1))
	}
	if s.Gateway.IsValid() && !s.Gateway.Is4() {
		add("gateway: %v is not an IPv4 address", s.Gateway)
	}
	for name, d := range map[string]time.Duration{"tcp_syn": s.Timeouts.TCPSyn, "tcp_established": s.Timeouts.TCPEstablished,
		"tcp_fin_wait": s.Timeouts.TCPFinWait, "tcp_time_wait": s.Timeouts.TCPTimeWait, "tcp_close": s.Timeouts.TCPClose,
		"udp": s.Timeouts.UDP, "udp_unreplied": s.Timeouts.UDPUnreplied} {
		if d < 0 || d > 365*24*time.Hour {
			add("timeouts.%s: %v is outside 0..1 year", name, d)
		}
	}
	if s.MaxFlows < 0 || s.MaxFlows > 1<<28 {
		add("max_flows: %d is outside 0..%d", s.MaxFlows, 1<<28)
	}
	if _, err := sched.ParseHashKey(s.HashKey); err != nil {
		add("hash_key: %v", err)
	}
	for i, a := range s.LocalAddrs {
		if !a.Is4() {
			add("local_addrs[%d]: %v is not an IPv4 address", i, a)
		}
	}
	for i := range s.Services {
		sv := &s.Services[i]
		at := fmt.Sprintf("services[%d]", i)
		if !sv.VIP.Is4() {
			add("%s.vip: %v is not an IPv4 address", at, sv.VIP)
		}
		if _, err := parseProto(sv.Protocol); err != nil {
			add("%s.protocol: %v", at, err)
		}
		if _, err := dataplane.ParseMode(sv.Mode); err != nil {
			add("%s.mode: %v", at, err)
		}
		if sv.Scheduler != "" {
			if _, err := sched.ParseKind(sv.Scheduler); err != nil {
				add("%s.scheduler: %v", at, err)
			}
		}
		if sv.PortEnd != 0 && sv.PortEnd < sv.Port {
			add("%s.port_end: %d is below port %d", at, sv.PortEnd, sv.Port)
		}
		if len(sv.Backends) == 0 {
			add("%s.backends: empty pool", at)
		}
		if sv.HealthCheck != nil {
			if err := sv.HealthCheck.WithDefaults().Validate(); err != nil {
				add("%s.health_check: %v", at, err)
			}
		}
		for j, b := range sv.Backends {
			if !b.Address.Is4() {
				add("%s.backends[%d].address: %v is not an IPv4 address", at, j, b.Address)
			}
		}
	}
	if _, err := steerServices(s); err != nil {
		add("services: %v", err)
	}
	s.validateHA(add)
	for i, c := range s.WorkerCPUs {
		if c < 0 || c > 4095 {
			add("worker_cpus[%d]: %d is not a CPU number", i, c)
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	// What only the resolved form can tell (duplicates, mode rules).
	_, err := NewBuilder().Build(s, Links{})
	return err
}

// steerServices lists the (VIP, port, protocol) entries the XDP steering
// program needs for s: one per port, a range expanded to each of its
// ports. The steering map holds nic.SteerMaxServices; more is an error.
func steerServices(s *Spec) ([]nic.SteerService, error) {
	n := 0
	for i := range s.Services {
		sv := &s.Services[i]
		n += int(max(sv.Port, sv.PortEnd)-sv.Port) + 1
	}
	if n > nic.SteerMaxServices {
		return nil, fmt.Errorf("%d service ports in all (ranges count each port), the steering program takes at most %d", n, nic.SteerMaxServices)
	}
	out := make([]nic.SteerService, 0, n)
	for i := range s.Services {
		sv := &s.Services[i]
		if !sv.VIP.Is4() {
			continue // Validate reports it
		}
		proto, _ := parseProto(sv.Protocol)
		vip := sv.VIP.As4()
		for p := int(sv.Port); p <= int(max(sv.Port, sv.PortEnd)); p++ {
			out = append(out, nic.SteerService{Addr: vip, Port: uint16(p), Proto: proto})
		}
	}
	return out, nil
}

// clientInterface returns the index in Interfaces of the interface toward
// clients: the one with RoleClient, or the first.
func (s *Spec) clientInterface() int {
	for i, ifc := range s.Interfaces {
		if ifc.Role == RoleClient {
			return i
		}
	}
	return 0
}

func parseProto(s string) (uint8, error) {
	switch s {
	case "tcp":
		return 6, nil
	case "udp":
		return 17, nil
	}
	return 0, fmt.Errorf("%q is neither tcp nor udp", s)
}
