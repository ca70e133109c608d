//go:build !linux

package peer

import (
	"github.com/culvert-lb/culvert/bench/lab"
	"github.com/culvert-lb/culvert/nic"
)

// Reflector needs Linux (AF_XDP).
type Reflector struct{}

// StartReflector returns ErrNotSupported.
func StartReflector(l *lab.Lab, cfg ReflectorConfig) (*Reflector, error) { return nil, ErrNotSupported }

// Threads returns nothing.
func (r *Reflector) Threads() []int { return nil }

// Stats returns ErrNotSupported.
func (r *Reflector) Stats() (ReflectorStats, error) { return ReflectorStats{}, ErrNotSupported }

// Stop does nothing.
func (r *Reflector) Stop() error { return nil }

// XDPForwarder needs Linux (XDP).
type XDPForwarder struct{}

// StartXDPForwarder returns ErrNotSupported.
func StartXDPForwarder(l *lab.Lab, cfg XDPForwarderConfig) (*XDPForwarder, error) {
	return nil, ErrNotSupported
}

// Mode returns the zero mode.
func (f *XDPForwarder) Mode() nic.AttachMode { return 0 }

// Stats returns ErrNotSupported.
func (f *XDPForwarder) Stats() (XDPForwarderStats, error) {
	return XDPForwarderStats{}, ErrNotSupported
}

// Close does nothing.
func (f *XDPForwarder) Close() error { return nil }

// NFTables needs Linux (nftables).
type NFTables struct{}

// StartNFTables returns ErrNotSupported.
func StartNFTables(l *lab.Lab, cfg NFTablesConfig) (*NFTables, error) { return nil, ErrNotSupported }

// Ruleset returns "".
func (n *NFTables) Ruleset() string { return "" }

// Notes returns nothing.
func (n *NFTables) Notes() []string { return nil }

// Close does nothing.
func (n *NFTables) Close() error { return nil }

// ConntrackBuiltIn returns ErrNotSupported.
func ConntrackBuiltIn() (bool, error) { return false, ErrNotSupported }

// HAProxy needs Linux (network namespaces).
type HAProxy struct{}

// StartHAProxy returns ErrNotSupported.
func StartHAProxy(l *lab.Lab, cfg HAProxyConfig) (*HAProxy, error) { return nil, ErrNotSupported }

// Pid returns 0.
func (h *HAProxy) Pid() int { return 0 }

// Dir returns "".
func (h *HAProxy) Dir() string { return "" }

// Config returns "".
func (h *HAProxy) Config() string { return "" }

// Output returns "".
func (h *HAProxy) Output() string { return "" }

// Stop does nothing.
func (h *HAProxy) Stop() error { return nil }

// ThreadedNAPI returns ErrNotSupported.
func ThreadedNAPI(h *lab.Host, ifname string, on bool) error { return ErrNotSupported }

// SetRPS returns ErrNotSupported.
func SetRPS(h *lab.Host, ifname string, cpumask uint64) error { return ErrNotSupported }

// NAPIThreads returns ErrNotSupported.
func NAPIThreads(h *lab.Host, ifname string) ([]NAPIThread, error) { return nil, ErrNotSupported }

// PinNAPIThreads returns ErrNotSupported.
func PinNAPIThreads(h *lab.Host, ifname string, cpu int) ([]NAPIThread, error) {
	return nil, ErrNotSupported
}
