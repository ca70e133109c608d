package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/culvert-lb/culvert/appliance/flowsync"
	"github.com/culvert-lb/culvert/appliance/vrrp"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"syscall"
	"time"

	"github.com/spf13/pflag"

	"github.com/culvert-lb/culvert/appliance"
	"github.com/culvert-lb/culvert/appliance/control"
	"github.com/culvert-lb/culvert/appliance/metrics"
	"github.com/culvert-lb/culvert/conntrack"
	"github.com/culvert-lb/culvert/dataplane"
	"github.com/culvert-lb/culvert/nic"
)

// RunStats is what `culvert run --stats-file` writes on exit.
type RunStats struct {
	Dataplane   dataplane.Stats   `json:"dataplane"`
	DropReasons map[string]uint64 `json:"drop_reasons,omitempty"`
	Steering    nic.SteerStats    `json:"steering"`
	LiveFlows   int               `json:"live_flows"`
}

func runDaemon(ctx context.Context, args []string, log *slog.Logger) error {
	fs := pflag.NewFlagSet("run", pflag.ContinueOnError)
	path := fs.String("config", "/etc/culvert/culvert.yaml", "configuration file")
	statsFile := fs.String("stats-file", "", "write the final counters here as JSON on exit")
	ctlPath := fs.String("control", control.DefaultSocket, "control API socket (JSON over HTTP, mode 0600); empty disables it")
	metricsAddr := fs.String("metrics", "", "serve Prometheus metrics at http://ADDR/metrics (e.g. 127.0.0.1:9100); empty disables it")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile (go tool pprof) of the whole run to this file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer func() { pprof.StopCPUProfile(); f.Close() }()
	}
	spec, err := appliance.LoadFile(*path)
	if err != nil {
		return err
	}
	// The file names the endpoints; flags given on the command line win.
	if !fs.Changed("control") && spec.ControlSocket != "" {
		*ctlPath = spec.ControlSocket
	}
	if !fs.Changed("metrics") && spec.MetricsListen != "" {
		*metricsAddr = spec.MetricsListen
	}
	d, err := appliance.Start(ctx, spec, log)
	if err != nil {
		return err
	}
	log.Info("running", "config", *path, "services", len(spec.Services))
	if *ctlPath != "" {
		if err := os.MkdirAll(filepath.Dir(*ctlPath), 0o700); err != nil {
			d.Close()
			return err
		}
		go func() {
			if err := control.Serve(ctx, *ctlPath, daemonAPI{d: d, path: *path}); err != nil {
				log.Error("control API", "err", err)
			}
		}()
	}
	if *metricsAddr != "" {
		c := metrics.New(metrics.DataplaneSource{DP: d.Dataplane(), Name: d.ServiceName}, func(a netip.AddrPort) int {
			if d.BackendHealth(a).Eligible() {
				return 1
			}
			return 0
		}).WithHA(metrics.HASource{VRRP: d.VRRP, Sync: d.Sync})
		// Listen before going on, so that a bad address fails the start.
		ln, err := net.Listen("tcp", *metricsAddr)
		if err != nil {
			d.Close()
			return fmt.Errorf("metrics: %w", err)
		}
		go func() {
			if err := metrics.ServeListener(ctx, ln, c); err != nil {
				log.Error("metrics", "err", err)
			}
		}()
		log.Info("metrics", "addr", ln.Addr().String())
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for range hup {
			// A bad file is refused with its file:line:column errors; the
			// running configuration stays.
			next, err := appliance.LoadFile(*path)
			if err == nil {
				err = d.Reload(next)
			}
			switch {
			case errors.Is(err, appliance.ErrNoChange):
				log.Info("reload: no change", "config", *path)
			case err != nil:
				log.Error("reload refused", "config", *path, "err", err)
			}
		}
	}()
	err = d.Wait(ctx)
	steer, _ := d.Steering().Stats()
	d.Close()
	s := d.Dataplane().Stats()
	log.Info("stopped", "rx", s.RX, "tx", s.TX, "pass", s.Pass, "drop", s.Drop, "new_flows", s.NewFlows)
	if *statsFile != "" {
		out := runStats(s, steer, d.Dataplane().Table().Stats().Live)
		b, _ := json.MarshalIndent(out, "", "  ")
		if werr := os.WriteFile(*statsFile, b, 0o644); werr != nil && err == nil {
			err = werr
		}
	}
	return err
}

// runStats gathers the counters `--stats-file` and `culvert show stats` report.
func runStats(s dataplane.Stats, steer nic.SteerStats, live int) RunStats {
	out := RunStats{Dataplane: s, Steering: steer, LiveFlows: live}
	for i, n := range s.Drops {
		if n > 0 {
			if out.DropReasons == nil {
				out.DropReasons = map[string]uint64{}
			}
			out.DropReasons[dataplane.DropReason(i).String()] = n
		}
	}
	return out
}

// daemonAPI serves the control API from a running daemon.
type daemonAPI struct {
	d    *appliance.Daemon
	path string // the configuration file, for reload
}

func (a daemonAPI) Stats() any {
	steer, _ := a.d.Steering().Stats()
	return runStats(a.d.Dataplane().Stats(), steer, a.d.Dataplane().Table().Stats().Live)
}

func (a daemonAPI) Services() any { return a.d.Spec() }

func (a daemonAPI) Flows(limit int) any {
	out := []FlowView{}
	a.d.Dataplane().Table().Range(func(r conntrack.Record[conntrack.Key4]) bool {
		out = append(out, flowView(r))
		return len(out) < limit
	})
	return out
}

// BackendView is one backend as `culvert show backends` prints it.
type BackendView struct {
	Backend     string `json:"backend"`
	Services    string `json:"services"`
	Weight      uint32 `json:"weight"`
	Health      string `json:"health"`
	ActiveFlows int64  `json:"active_flows"`
	NewFlows    uint64 `json:"new_flows"`
	Packets     uint64 `json:"packets"`
	Bytes       uint64 `json:"bytes"`
}

func (a daemonAPI) Backends() any {
	spec := a.d.Spec()
	weight := map[netip.AddrPort]uint32{}
	for _, s := range spec.Services {
		for _, b := range s.Backends {
			p := b.Port
			if p == 0 {
				p = s.Port
			}
			weight[netip.AddrPortFrom(b.Address, p)] = b.Weight
		}
	}
	src := metrics.DataplaneSource{DP: a.d.Dataplane(), Name: a.d.ServiceName}
	out := []BackendView{}
	for _, b := range src.Backends() {
		out = append(out, BackendView{Backend: b.Addr.String(), Services: b.Service, Weight: weight[b.Addr],
			Health: a.d.BackendHealth(b.Addr).String(), ActiveFlows: b.Active, NewFlows: b.NewFlows, Packets: b.Packets, Bytes: b.Bytes})
	}
	return out
}

// HealthView is one checked backend as `culvert show health` prints it.
type HealthView struct {
	Backend         string `json:"backend"`
	Check           string `json:"check"`
	State           string `json:"state"`
	ConsecutiveOK   int    `json:"consecutive_ok"`
	ConsecutiveFail int    `json:"consecutive_fail"`
	LastError       string `json:"last_error,omitempty"`
	LastChange      string `json:"last_change,omitempty"`
}

func (a daemonAPI) Health() any {
	out := []HealthView{}
	for _, s := range a.d.HealthSnapshot() {
		v := HealthView{Backend: s.Target.Addr.String(), Check: s.Target.Spec.Kind.String(), State: s.State.String(),
			ConsecutiveOK: s.ConsecutiveOK, ConsecutiveFail: s.ConsecutiveFail}
		if s.LastError != nil {
			v.LastError = s.LastError.Error()
		}
		if !s.LastChange.IsZero() {
			v.LastChange = s.LastChange.Format(time.RFC3339)
		}
		out = append(out, v)
	}
	return out
}

func (a daemonAPI) SetEnabled(addr netip.Addr, port uint16, on bool) error {
	return a.d.SetBackendEnabled(addr, port, on)
}

func (a daemonAPI) SetWeight(addr netip.Addr, port uint16, w uint32) error {
	return a.d.SetBackendWeight(addr, port, w)
}

func (a daemonAPI) Reload() error {
	next, err := appliance.LoadFile(a.path)
	if err == nil {
		err = a.d.Reload(next)
	}
	if errors.Is(err, appliance.ErrNoChange) {
		return nil
	}
	return err
}

func checkConfig(args []string) error {
	fs := pflag.NewFlagSet("check-config", pflag.ContinueOnError)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return errors.New("usage: culvert check-config FILE")
	}
	spec, err := appliance.LoadFile(fs.Arg(0))
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stdout, "%s: ok (%d services)\n", fs.Arg(0), len(spec.Services))
	return nil
}

// VRRPGroupView is one VRRP group as `culvert show vrrp` prints it.
type VRRPGroupView struct {
	VRID              uint8             `json:"virtual_router_id"`
	State             string            `json:"state"`
	Fault             bool              `json:"fault,omitempty"`
	Priority          uint8             `json:"priority"`
	EffectivePriority uint8             `json:"effective_priority"`
	Master            string            `json:"master,omitempty"`
	AdvertsSent       uint64            `json:"adverts_sent"`
	AdvertsReceived   uint64            `json:"adverts_received"`
	Rejected          map[string]uint64 `json:"rejected,omitempty"`
	Transitions       uint64            `json:"transitions"`
	LastTransition    string            `json:"last_transition,omitempty"`
	Down              []string          `json:"tracked_down,omitempty"`
}

// VRRPView is `culvert show vrrp`.
type VRRPView struct {
	Enabled   bool              `json:"enabled"`
	Interface string            `json:"interface,omitempty"`
	Address   string            `json:"address,omitempty"`
	Rejected  map[string]uint64 `json:"rejected,omitempty"` // not attributable to a group
	Groups    []VRRPGroupView   `json:"groups,omitempty"`
}

func (a daemonAPI) VRRP() any {
	s, ok := a.d.VRRP()
	if !ok {
		return VRRPView{}
	}
	v := VRRPView{Enabled: true, Interface: s.Interface, Address: s.Addr.String(), Rejected: vrrpRejects(s.Rejects)}
	for _, g := range s.Groups {
		gv := VRRPGroupView{VRID: g.VRID, State: g.State.String(), Fault: g.Fault, Priority: g.Priority, EffectivePriority: g.EffectivePriority,
			AdvertsSent: g.AdvertsSent, AdvertsReceived: g.AdvertsReceived, Rejected: vrrpRejects(g.Rejects), Transitions: g.Transitions, Down: g.Down}
		if g.Master.IsValid() {
			gv.Master = g.Master.String()
		}
		if !g.LastTransition.IsZero() {
			gv.LastTransition = g.LastTransition.Format(time.RFC3339Nano)
		}
		v.Groups = append(v.Groups, gv)
	}
	return v
}

func vrrpRejects(c [vrrp.NumRejectReasons]uint64) map[string]uint64 {
	m := map[string]uint64{}
	for i, n := range c {
		if n > 0 {
			m[vrrp.RejectReason(i).String()] = n
		}
	}
	return m
}

// SyncView is `culvert show sync`.
type SyncView struct {
	Enabled         bool              `json:"enabled"`
	Synced          bool              `json:"synced"`      // our bulk resync from the peer completed
	PeerSynced      bool              `json:"peer_synced"` // the peer has a complete copy of our table
	LagMillis       int64             `json:"lag_ms"`      // since the last message accepted from the peer
	Backlog         int               `json:"backlog"`     // changes queued by the workers, not yet sent
	QueueDrops      uint64            `json:"queue_drops"` // changes lost to full worker queues
	RecordsSent     uint64            `json:"records_sent"`
	MessagesSent    uint64            `json:"messages_sent"`
	SendErrors      uint64            `json:"send_errors"`
	RecordsReceived uint64            `json:"records_received"`
	Imported        uint64            `json:"imported"`
	ImportErrors    uint64            `json:"import_errors"`
	Rejected        map[string]uint64 `json:"rejected,omitempty"`
	Lost            uint64            `json:"messages_lost"` // gaps not filled (or still in flight)
	Late            uint64            `json:"messages_late"` // gaps filled: resent for our Nacks, or reordered
	NacksSent       uint64            `json:"nacks_sent"`
	Resent          uint64            `json:"messages_resent"` // for the peer's Nacks
	ResendMisses    uint64            `json:"resend_misses"`   // asked for but no longer held
	BulkRequests    uint64            `json:"bulk_requests_sent"`
	BulkServed      uint64            `json:"bulk_served"`
	LastBulkRecords uint64            `json:"last_bulk_records"`
	LastBulkMillis  int64             `json:"last_bulk_ms"`
	PeerEpoch       uint64            `json:"peer_epoch"`
	Epoch           uint64            `json:"epoch"`
}

func (a daemonAPI) Sync() any {
	s, q, ok := a.d.Sync()
	if !ok {
		return SyncView{}
	}
	v := SyncView{Enabled: true, Synced: s.Synced, PeerSynced: s.PeerSynced, LagMillis: s.Lag.Milliseconds(), Backlog: q.Backlog,
		QueueDrops: q.Dropped, RecordsSent: s.RecordsSent, MessagesSent: s.MessagesSent, SendErrors: s.SendErrors,
		RecordsReceived: s.RecordsReceived, Imported: s.Imported, ImportErrors: s.ImportErrors, Rejected: map[string]uint64{},
		Lost: s.Gaps - s.Late, Late: s.Late, NacksSent: s.NacksSent, Resent: s.Resent, ResendMisses: s.ResendMisses, BulkRequests: s.BulkRequestsSent, BulkServed: s.BulkRequestsServed,
		LastBulkRecords: s.LastBulkRecords, LastBulkMillis: s.LastBulkDuration.Milliseconds(), PeerEpoch: s.PeerEpoch, Epoch: s.Epoch}
	for i, n := range s.Rejected {
		if n > 0 {
			v.Rejected[flowsync.RejectReason(i).String()] = n
		}
	}
	return v
}
