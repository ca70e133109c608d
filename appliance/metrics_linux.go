package appliance

import (
	"net/netip"
	"strings"

	"github.com/culvert-lb/culvert/appliance/health"
)

// BackendHealth returns the health state of the backend at a (its address
// and the port it serves on); health.StateUnknown when no check covers it.
// Safe from any goroutine.
func (d *Daemon) BackendHealth(a netip.AddrPort) health.State {
	if d.checker == nil {
		return health.StateUnknown
	}
	return d.checker.State(a)
}

// ServiceName returns the name of the running service at vip, proto
// ("tcp" or "udp") and port, or "". Safe from any goroutine.
func (d *Daemon) ServiceName(vip netip.Addr, proto string, port uint16) string {
	d.applyMu.Lock()
	defer d.applyMu.Unlock()
	for i := range d.spec.Services {
		s := &d.spec.Services[i]
		if s.VIP == vip && strings.EqualFold(s.Protocol, proto) && s.Port == port {
			return s.Name
		}
	}
	return ""
}

// HealthSnapshot returns the health of every checked backend.
func (d *Daemon) HealthSnapshot() []health.Status {
	if d.checker == nil {
		return nil
	}
	return d.checker.Snapshot()
}
