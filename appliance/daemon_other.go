//go:build !linux

package appliance

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"

	"github.com/culvert-lb/culvert/appliance/flowsync"
	"github.com/culvert-lb/culvert/appliance/health"
	"github.com/culvert-lb/culvert/appliance/vrrp"
	"github.com/culvert-lb/culvert/dataplane"
	"github.com/culvert-lb/culvert/nic"
)

// Daemon is a running appliance; it needs Linux (AF_XDP).
type Daemon struct{}

// Start is not supported off Linux.
func Start(ctx context.Context, spec *Spec, log *slog.Logger) (*Daemon, error) {
	return nil, errors.New("appliance: needs Linux (AF_XDP)")
}

// Dataplane returns nil.
func (d *Daemon) Dataplane() *dataplane.Dataplane { return nil }

// Wait returns at once.
func (d *Daemon) Wait(ctx context.Context) error { return nil }

// Close does nothing.
func (d *Daemon) Close() error { return nil }

// Steering returns nil.
func (d *Daemon) Steering() *nic.Steering { return nil }

// ErrNoChange is returned by Reload when nothing changed.
var ErrNoChange = errors.New("configuration unchanged")

// Reload is not supported off Linux.
func (d *Daemon) Reload(spec *Spec) error { return errors.New("appliance: needs Linux (AF_XDP)") }

// Spec returns the zero Spec.
func (d *Daemon) Spec() Spec { return Spec{} }

// SetBackendWeight is not supported off Linux.
func (d *Daemon) SetBackendWeight(addr netip.Addr, port uint16, weight uint32) error {
	return errors.New("appliance: needs Linux (AF_XDP)")
}

// BackendHealth reports StateUnknown.
func (d *Daemon) BackendHealth(a netip.AddrPort) health.State { return health.StateUnknown }

// ServiceName returns "".
func (d *Daemon) ServiceName(vip netip.Addr, proto string, port uint16) string { return "" }

// HealthSnapshot returns nil.
func (d *Daemon) HealthSnapshot() []health.Status { return nil }

// SetBackendEnabled is not supported off Linux.
func (d *Daemon) SetBackendEnabled(addr netip.Addr, port uint16, enabled bool) error {
	return errors.New("appliance: needs Linux (AF_XDP)")
}

// VRRP reports no HA off Linux.
func (d *Daemon) VRRP() (vrrp.Snapshot, bool) { return vrrp.Snapshot{}, false }

// Sync reports no HA off Linux.
func (d *Daemon) Sync() (flowsync.Snapshot, dataplane.SyncStats, bool) {
	return flowsync.Snapshot{}, dataplane.SyncStats{}, false
}
