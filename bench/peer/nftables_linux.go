package peer

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"

	"github.com/vishvananda/netlink"

	"github.com/culvert-lb/culvert/bench/lab"
)

// NFTables is the Linux kernel as an L4 load balancer without IPVS, in the
// appliance's namespace: an nftables table (NFTablesConfig.Ruleset) that
// DNATs new connections to the VIP's services to a backend and SNATs them,
// conntrack for the rest, and IP forwarding on. The router already sends
// the VIP's traffic to the appliance, and the backends send the SNAT
// range's back to it.
//
// Start sets, in the appliance's namespace: net.ipv4.ip_forward=1 (the lab
// leaves the appliance's kernel not forwarding) and send_redirects=0 on all
// and on each appliance interface (one-armed, a forwarded packet leaves by
// the interface it came in on, which would make the kernel tell the router
// about a better route, the backend, on every new flow). And in the
// initial namespace, since it is global: nf_conntrack_max (see
// NFTablesConfig.ConntrackMax). Close restores every value it changed and
// deletes the table.
//
// Its methods are safe for concurrent use. There is no useful zero value:
// use StartNFTables.
type NFTables struct {
	host    *lab.Host
	ruleset string
	notes   []string

	mu       sync.Mutex
	sysctls  []sysctlValue // set in the namespace, to restore, in order
	ctMax    string        // nf_conntrack_max to restore in the initial namespace; "" if unchanged
	closed   bool
	closeErr error
}

// sysctlValue is a sysctl key and the value it had.
type sysctlValue struct{ key, old string }

// conntrackMaxPath is the global limit on conntrack entries, writable only
// from the initial network namespace.
const conntrackMaxPath = "/proc/sys/net/netfilter/nf_conntrack_max"

// StartNFTables loads the ruleset for lab l into the appliance's namespace
// with nft(8) and turns forwarding on. It fails if an XDP program is
// attached to an appliance interface: the kernel would not see the frames
// the program takes (Culvert's steering, the Reflector, the XDPForwarder).
func StartNFTables(l *lab.Lab, cfg NFTablesConfig) (*NFTables, error) {
	cfg = cfg.withDefaults(l)
	rules, err := cfg.Ruleset()
	if err != nil {
		return nil, err
	}
	n := &NFTables{host: l.Appliance, ruleset: rules}
	if err := checkNoXDP(l.Appliance, applianceLinks(l)); err != nil {
		return nil, fmt.Errorf("nftables: %w", err)
	}
	keys := [][2]string{{"net.ipv4.ip_forward", "1"}, {"net.ipv4.conf.all.send_redirects", "0"}}
	for _, k := range applianceLinks(l) {
		keys = append(keys, [2]string{"net.ipv4.conf." + k.Name + ".send_redirects", "0"})
	}
	for _, kv := range keys {
		if err := n.setSysctl(kv[0], kv[1]); err != nil {
			n.Close()
			return nil, fmt.Errorf("nftables: %w", err)
		}
	}
	n.raiseConntrackMax(cfg.ConntrackMax)
	if builtin, err := ConntrackBuiltIn(); err == nil {
		n.notes = append(n.notes, fmt.Sprintf("nf_conntrack built in: %v", builtin))
	}
	if v, err := l.Appliance.Sysctl("net.netfilter.nf_conntrack_buckets"); err == nil {
		n.notes = append(n.notes, "nf_conntrack_buckets "+v+" (global, fixed at boot or by the module's hashsize)")
	}
	// Adding and deleting the table first makes the load replace a stale
	// one, in the same transaction.
	script := fmt.Sprintf("table ip %s\ndelete table ip %s\n%s", NFTablesTable, NFTablesTable, rules)
	if err := n.nft(script, "-f", "-"); err != nil {
		n.Close()
		return nil, err
	}
	n.notes = append(n.notes, fmt.Sprintf("spread %v over %d backends, services %v, snat %v", cfg.Spread, len(cfg.Backends), cfg.Services, cmp(cfg.SNAT, DefaultSNAT)))
	return n, nil
}

// cmp returns a unless it is zero, else b.
func cmp(a, b netip.Addr) netip.Addr {
	if a.IsValid() {
		return a
	}
	return b
}

// nft runs nft in the appliance's namespace with stdin.
func (n *NFTables) nft(stdin string, args ...string) error {
	cmd := n.host.Command("nft", args...)
	cmd.Stdin = strings.NewReader(stdin)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("nftables: nft %s: %w: %s", strings.Join(args, " "), err, tail(out.Bytes(), 500))
	}
	return nil
}

// setSysctl sets key in the appliance's namespace and remembers its value.
func (n *NFTables) setSysctl(key, v string) error {
	old, err := n.host.Sysctl(key)
	if err != nil {
		return err
	}
	if old == v {
		return nil
	}
	if err := n.host.SetSysctl(key, v); err != nil {
		return err
	}
	n.sysctls = append(n.sysctls, sysctlValue{key, old})
	n.notes = append(n.notes, fmt.Sprintf("%s %s -> %s", key, old, v))
	return nil
}

// raiseConntrackMax raises the global nf_conntrack_max to at least want
// (unless want < 0), noting what it did or why it could not.
func (n *NFTables) raiseConntrackMax(want int) {
	if want < 0 {
		return
	}
	b, err := os.ReadFile(conntrackMaxPath)
	if err != nil {
		n.notes = append(n.notes, fmt.Sprintf("nf_conntrack_max: %v", err))
		return
	}
	old := strings.TrimSpace(string(b))
	cur, err := strconv.Atoi(old)
	if err != nil || cur >= want {
		n.notes = append(n.notes, "nf_conntrack_max "+old)
		return
	}
	if err := os.WriteFile(conntrackMaxPath, []byte(strconv.Itoa(want)), 0); err != nil {
		n.notes = append(n.notes, fmt.Sprintf("nf_conntrack_max %s: not raised to %d: %v", old, want, err))
		return
	}
	n.ctMax = old
	n.notes = append(n.notes, fmt.Sprintf("nf_conntrack_max %s -> %d (global)", old, want))
}

// Ruleset returns the table loaded.
func (n *NFTables) Ruleset() string { return n.ruleset }

// Notes describe what Start set and found: sysctls changed, the conntrack
// limits, whether conntrack is built in, the spread.
func (n *NFTables) Notes() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]string(nil), n.notes...)
}

// Close deletes the table and restores the sysctls Start changed, in
// reverse order. Later calls return the first result.
func (n *NFTables) Close() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return n.closeErr
	}
	n.closed = true
	var errs []error
	if n.ruleset != "" {
		errs = append(errs, n.nft("", "delete", "table", "ip", NFTablesTable))
	}
	for i := len(n.sysctls) - 1; i >= 0; i-- {
		s := n.sysctls[i]
		if err := n.host.SetSysctl(s.key, s.old); err != nil {
			errs = append(errs, fmt.Errorf("nftables: restore %s: %w", s.key, err))
		}
	}
	if n.ctMax != "" {
		if err := os.WriteFile(conntrackMaxPath, []byte(n.ctMax), 0); err != nil {
			errs = append(errs, fmt.Errorf("nftables: restore nf_conntrack_max: %w", err))
		}
	}
	n.closeErr = errors.Join(errs...)
	return n.closeErr
}

// ConntrackBuiltIn reports whether nf_conntrack is built into the kernel
// rather than a module: a module has /sys/module/nf_conntrack/initstate.
// Built in, its hash table size is fixed at boot (nf_conntrack.hashsize on
// the command line), and nothing needs loading.
func ConntrackBuiltIn() (bool, error) {
	if _, err := os.Stat("/sys/module/nf_conntrack"); err != nil {
		return false, fmt.Errorf("nf_conntrack not loaded: %w", err)
	}
	_, err := os.Stat("/sys/module/nf_conntrack/initstate")
	if errors.Is(err, os.ErrNotExist) {
		return true, nil
	}
	return false, err
}

// checkNoXDP fails if an XDP program is attached to any of links in h.
func checkNoXDP(h *lab.Host, links []*lab.Link) error {
	return h.Do(func() error {
		for _, k := range links {
			lk, err := netlink.LinkByName(k.Name)
			if err != nil {
				return err
			}
			if x := lk.Attrs().Xdp; x != nil && x.Attached {
				return fmt.Errorf("%s has an XDP program attached (id %d): the kernel would not see its frames", k.Name, x.ProgId)
			}
		}
		return nil
	})
}
