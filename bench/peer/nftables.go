package peer

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"github.com/culvert-lb/culvert/bench/lab"
)

// Spread is how NFTables picks a backend for a new connection.
type Spread int

const (
	// SpreadHash hashes the 5-tuple (jhash of source address and port,
	// destination address and port, protocol), so a flow's packets that
	// reach the ruleset again (after a conntrack entry expired) pick the
	// same backend; as with Culvert's own choice, but with no weights.
	SpreadHash Spread = iota
	// SpreadRoundRobin takes the backends in turn (numgen inc), the most
	// even spread for many short connections.
	SpreadRoundRobin
)

// String returns "hash" or "round-robin".
func (s Spread) String() string {
	switch s {
	case SpreadHash:
		return "hash"
	case SpreadRoundRobin:
		return "round-robin"
	}
	return fmt.Sprintf("spread-%d", int(s))
}

// NFTablesTable is the name of the table NFTables adds (family ip) and
// deletes.
const NFTablesTable = "culvert_peer"

// nftHashSeed makes the hash spread reproducible from run to run.
const nftHashSeed = 0x63756c76 // "culv"

// DefaultSNAT is the source address NFTables gives balanced connections when
// NFTablesConfig.SNAT is zero: the first address of lab.SNATRange that
// Culvert's default configuration uses too.
var DefaultSNAT = netip.MustParseAddr("198.18.2.1")

// DefaultConntrackMax is what NFTables raises nf_conntrack_max to by
// default.
const DefaultConntrackMax = 1 << 20

// NFTablesConfig describes the nftables balancer. The zero value spreads
// the lab's HTTP (TCP) and UDP echo ports over every backend by hash,
// SNAT to DefaultSNAT.
type NFTablesConfig struct {
	// VIP is the service address; zero: the lab's.
	VIP netip.Addr
	// Backends are the backends' addresses; empty: every backend of the lab.
	Backends []netip.Addr
	// Services are the VIP's ports; empty: the lab's HTTP and UDP echo
	// ports. A backend serves each on the same port.
	Services []Service
	// SNAT is the source address of balanced connections toward the
	// backends, in lab.SNATRange (routed to the appliance); zero:
	// DefaultSNAT.
	SNAT   netip.Addr
	Spread Spread
	// ConntrackMax is the least nf_conntrack_max to run with; 0 means
	// DefaultConntrackMax, negative leaves it alone. The limit is global
	// (read-only in a namespace other than the initial one), so it is
	// raised there, and restored by Close.
	ConntrackMax int
}

// withDefaults fills the zero fields of c from lab l.
func (c NFTablesConfig) withDefaults(l *lab.Lab) NFTablesConfig {
	if !c.VIP.IsValid() {
		c.VIP = l.VIP
	}
	if len(c.Backends) == 0 {
		c.Backends = backendAddrs(l)
	}
	if len(c.Services) == 0 {
		c.Services = labServices(l)
	}
	if c.ConntrackMax == 0 {
		c.ConntrackMax = DefaultConntrackMax
	}
	return c
}

// Ruleset returns the nftables ruleset for c, in the syntax of `nft -f`:
// one table with a DNAT rule in prerouting that sends new connections to
// the VIP's services to a backend on the same port, and a SNAT rule in
// postrouting for those connections. Conntrack does the rest: replies are
// mapped back before routing, so the SNAT address needs to be on no
// interface, as with Culvert. Only the first packet of a connection goes
// through the nat chains.
func (c NFTablesConfig) Ruleset() (string, error) {
	var errs []error
	if !c.VIP.Is4() {
		errs = append(errs, fmt.Errorf("vip %v: not an IPv4 address", c.VIP))
	}
	snat := c.SNAT
	if !snat.IsValid() {
		snat = DefaultSNAT
	}
	if !snat.Is4() {
		errs = append(errs, fmt.Errorf("snat %v: not an IPv4 address", snat))
	}
	if len(c.Backends) == 0 {
		errs = append(errs, errors.New("no backends"))
	}
	for i, b := range c.Backends {
		if !b.Is4() {
			errs = append(errs, fmt.Errorf("backends[%d] %v: not an IPv4 address", i, b))
		}
	}
	if len(c.Services) == 0 {
		errs = append(errs, errors.New("no services"))
	}
	for i, s := range c.Services {
		if err := s.validate(); err != nil {
			errs = append(errs, fmt.Errorf("services[%d]: %w", i, err))
		}
	}
	var pick string
	switch c.Spread {
	case SpreadHash:
		pick = fmt.Sprintf("jhash ip saddr . th sport . ip daddr . th dport . meta l4proto mod %d seed %#x", len(c.Backends), nftHashSeed)
	case SpreadRoundRobin:
		pick = fmt.Sprintf("numgen inc mod %d", len(c.Backends))
	default:
		errs = append(errs, fmt.Errorf("spread %v: unknown", c.Spread))
	}
	if err := errors.Join(errs...); err != nil {
		return "", fmt.Errorf("nftables: %w", err)
	}
	svcs := make([]string, len(c.Services))
	for i, s := range c.Services {
		svcs[i] = fmt.Sprintf("%v . %d", s.Proto, s.Port)
	}
	backends := make([]string, len(c.Backends))
	for i, b := range c.Backends {
		backends[i] = fmt.Sprintf("%d : %v", i, b)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "table ip %s {\n", NFTablesTable)
	b.WriteString("\tchain prerouting {\n")
	b.WriteString("\t\ttype nat hook prerouting priority dstnat; policy accept;\n")
	fmt.Fprintf(&b, "\t\tip daddr %v meta l4proto . th dport { %s } dnat ip to %s map { %s }\n",
		c.VIP, strings.Join(svcs, ", "), pick, strings.Join(backends, ", "))
	b.WriteString("\t}\n")
	b.WriteString("\tchain postrouting {\n")
	b.WriteString("\t\ttype nat hook postrouting priority srcnat; policy accept;\n")
	fmt.Fprintf(&b, "\t\tct status dnat snat ip to %v\n", snat)
	b.WriteString("\t}\n")
	b.WriteString("}\n")
	return b.String(), nil
}
