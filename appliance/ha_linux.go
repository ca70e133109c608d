package appliance

import (
	"context"
	"encoding/binary"
	"fmt"
	"iter"
	"maps"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/culvert-lb/culvert/appliance/flowsync"
	"github.com/culvert-lb/culvert/appliance/vrrp"
	"github.com/culvert-lb/culvert/conntrack"
	"github.com/culvert-lb/culvert/dataplane"
)

// # HA pair
//
// With Spec.HA the daemon runs a vrrp.Router on the HA interface, one
// group per vrrp_instance. A group's VIPs and SNAT addresses are in the
// steering maps only while the group is master here (Daemon.owned): the
// transition callback swaps them in or out, the Router then sends the
// gratuitous ARPs that move the router's and the backends' caches to this
// node, and the dataplane answers ARP for them from then on. On the backup
// the addresses are in no map: their frames reach the kernel, which does
// not have them and does not forward, and drops them.
//
// With HA.Sync a flowsync.Endpoint streams the connection table: a sync
// goroutine drains the dataplane's change rings every 10 ms and sends the
// changes of flows whose VIP this node is master of (so an active/active
// pair never sends back what it imported), and walks the whole table every
// Refresh for the timers of idle flows. Records received are imported into
// the table whatever the local state: they change no steering, so the
// backup's forwarding is untouched until it becomes master. A node that
// starts asks for a bulk resync; until it completes (or no peer has been
// heard for syncGrace) each group runs at priority 1, so that a returning
// node of higher priority preempts only with the flows in its table (see
// runResyncGate).

// syncGrace is how long a starting node waits for its peer's bulk resync
// before it stops holding its priority down: no peer heard by then means
// there is none to preempt.
const syncGrace = 3 * time.Second

// syncTrack is the tracked condition that holds priority down until the
// first resync.
const syncTrack = "sync"

// haState is the HA machinery of a Daemon.
type haState struct {
	router *vrrp.Router
	sync   *flowsync.Endpoint // nil without HA.Sync
	// groups holds each group's addresses, VIPs then SNAT addresses, and
	// master the groups that are master here. Under Daemon.applyMu.
	groups map[uint8][]netip.Addr
	master map[uint8]bool
	// owned is a copy of Daemon.owned for the sync goroutine.
	owned atomic.Pointer[map[netip.Addr]bool]
	// refreshing is set while a refresh walk runs (one at a time).
	refreshing atomic.Bool
}

// startHA builds and starts the VRRP router and the sync endpoint. The
// daemon's workers are running; nothing is owned yet.
func (d *Daemon) startHA(ctx context.Context) error {
	h := d.spec.HA
	ha := &haState{groups: map[uint8][]netip.Addr{}, master: map[uint8]bool{}}
	empty := map[netip.Addr]bool{}
	ha.owned.Store(&empty)
	d.ha = ha

	ifname := h.Interface
	if ifname == "" {
		ifname = d.ifaces[d.client].name
	}
	rc := vrrp.DefaultRouterConfig()
	rc.Interface, rc.Peers = ifname, h.UnicastPeers
	for i, g := range h.Groups {
		nc := vrrp.Default()
		nc.VRID, nc.Priority, nc.Preempt, nc.PreemptDelay = g.VirtualRouterID, g.Priority, !g.NoPreempt, g.PreemptDelay
		if g.AdvertInt != 0 {
			nc.AdvertInterval = g.AdvertInt
		}
		ga := groupAddrs{vrid: g.VirtualRouterID, vips: d.spec.GroupVIPs(i), locals: d.spec.GroupLocals(i)}
		nc.Addrs = ga.vips
		gc := vrrp.GroupConfig{Node: nc, GARP: ga.locals}
		for _, t := range g.TrackInterface {
			gc.TrackInterfaces = append(gc.TrackInterfaces, vrrp.Track{Name: t.Name, Weight: uint8(t.Weight)})
		}
		for _, t := range g.TrackService {
			gc.Track = append(gc.Track, vrrp.Track{Name: serviceTrack(t.Name), Weight: uint8(t.Weight)})
		}
		if h.Sync != nil && g.Priority > 1 {
			// Down to 1 from any priority, one a reload sets included.
			gc.Track = append(gc.Track, vrrp.Track{Name: syncTrack, Weight: vrrp.OwnerPriority - 2})
		}
		rc.Groups = append(rc.Groups, gc)
		ha.groups[g.VirtualRouterID] = ga.all()
	}
	r, err := vrrp.NewRouter(rc, d.log.With("component", "vrrp"), d.vrrpTransition)
	if err != nil {
		return err
	}
	ha.router = r
	if h.Sync != nil {
		key, _ := h.Sync.KeyBytes() // Validate checked it
		la := h.Sync.Listen.Addr().As4()
		ep, err := flowsync.New(flowsync.Config{
			Node:     binary.BigEndian.Uint32(la[:]) | 1<<31, // the listen address: unique in the pair
			Key:      key,
			Local:    h.Sync.Listen,
			Peer:     h.Sync.Peer,
			Importer: syncImporter{d},
			Walk:     d.syncWalk(),
			Log:      d.log,
		})
		if err != nil {
			return fmt.Errorf("sync: %w", err)
		}
		ha.sync = ep
		r.SetTracked(syncTrack, false)
		d.wg.Add(3)
		go func() {
			defer d.wg.Done()
			if err := ep.Run(ctx); err != nil && ctx.Err() == nil {
				d.log.Error("sync endpoint stopped", "err", err)
			}
		}()
		go func() { defer d.wg.Done(); d.runSyncSender(ctx) }()
		go func() { defer d.wg.Done(); d.runResyncGate(ctx) }()
	}
	return r.Start()
}

// stopHA gives up mastership (priority-0 advertisements, RFC 5798 6.4.3)
// and closes the sync endpoint.
func (d *Daemon) stopHA() {
	if d.ha == nil {
		return
	}
	if d.ha.router != nil {
		d.ha.router.Stop()
	}
	if d.ha.sync != nil {
		d.ha.sync.Close()
	}
}

// vrrpTransition is the Router's callback: claim or release the group's
// addresses in the steering maps.
func (d *Daemon) vrrpTransition(vrid uint8, from, to vrrp.State) {
	d.log.Info("vrrp transition", "vrid", vrid, "from", from, "to", to)
	d.applyMu.Lock()
	defer d.applyMu.Unlock()
	d.ha.master[vrid] = to == vrrp.Master
	for _, a := range d.ha.groups[vrid] {
		if to == vrrp.Master {
			d.owned[a] = true
		} else {
			delete(d.owned, a)
		}
	}
	d.ownedChanged("vrrp transition")
}

// ownedChanged publishes Daemon.owned to the sync goroutine and steers by
// it. Under applyMu.
func (d *Daemon) ownedChanged(why string) {
	cp := maps.Clone(d.owned)
	d.ha.owned.Store(&cp)
	if err := d.steer(); err != nil {
		d.log.Error("steering after "+why, "err", err)
	}
}

// setGroupAddrs takes in a reload's new group addresses: a group that is
// master here gives up the addresses it lost and claims the new ones
// (steering them, and the Router announcing them with gratuitous ARP); a
// backup claims the new list when it next becomes master. The Router
// advertises the new VIP list. Under applyMu, after the dataplane has the
// new configuration.
func (d *Daemon) setGroupAddrs(changes []groupAddrs) {
	if len(changes) == 0 {
		return
	}
	// Every release before any claim: an address may move between two
	// groups that are both master here.
	for _, c := range changes {
		if d.ha.master[c.vrid] {
			for _, a := range d.ha.groups[c.vrid] {
				delete(d.owned, a)
			}
		}
	}
	for _, c := range changes {
		if err := d.ha.router.SetAddrs(c.vrid, c.vips, c.locals); err != nil {
			// Not reached: Validate keeps them IPv4 and at most 255 VIPs.
			// The group keeps its old addresses rather than own some it
			// does not advertise or announce.
			d.log.Error("vrrp addresses not changed", "vrid", c.vrid, "err", err)
		} else {
			d.ha.groups[c.vrid] = c.all()
			d.log.Info("vrrp group addresses set by reload", "vrid", c.vrid, "vips", c.vips, "local_addrs", c.locals, "master", d.ha.master[c.vrid])
		}
		if d.ha.master[c.vrid] {
			for _, a := range d.ha.groups[c.vrid] {
				d.owned[a] = true
			}
		}
	}
	d.ownedChanged("reload")
}

// runResyncGate holds each group's priority down to 1 (the syncTrack
// condition) while this node is master of nothing and does not have a
// complete copy of the peer's table, so that it preempts only with the
// peer's flows in its table. A backup that stops hearing the peer's sync
// for a second (its link went down, say) asks for a fresh bulk resync, so
// that on its return it waits for the flows it missed. A node that hears
// no peer at all for syncGrace after start is not held: there is nobody
// to preempt.
func (d *Daemon) runResyncGate(ctx context.Context) {
	ep := d.ha.sync
	start := time.Now()
	held, asked := true, false
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		s := ep.Stats()
		master := len(*d.ha.owned.Load()) > 0
		heard := s.MessagesReceived > 0 && s.Lag < syncGrace
		lagging := s.MessagesReceived > 0 && s.Lag > time.Second
		if lagging && !asked && !master {
			d.log.Info("sync: peer silent, asking for a fresh resync", "lag", s.Lag)
			ep.RequestBulk()
			asked = true
		}
		if !lagging {
			asked = false
		}
		hold := !master && !ep.Synced() && (heard || time.Since(start) < syncGrace)
		if hold != held {
			held = hold
			d.ha.router.SetTracked(syncTrack, !hold)
			if hold {
				d.log.Info("sync: priority held until the resync completes")
			} else {
				d.log.Info("sync: priority restored", "synced", s.Synced, "records", s.LastBulkRecords, "took", s.LastBulkDuration)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-ep.SyncChanged():
		}
	}
}

// runSyncSender drains the dataplane's change rings every 10 ms and sends
// what belongs to groups this node is master of; every Refresh it resends
// the whole table.
func (d *Daemon) runSyncSender(ctx context.Context) {
	refresh := d.spec.HA.Sync.Refresh
	if refresh == 0 {
		refresh = DefaultSyncRefresh
	}
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	next := time.Now().Add(refresh)
	buf := make([]flowsync.Record, 0, 512)
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		owned := *d.ha.owned.Load()
		d.dp.DrainSync(func(e *dataplane.SyncEvent) {
			if len(owned) == 0 || !owned[netip.AddrFrom4(e.Flow.Orig.Dst)] {
				return
			}
			r, ok := d.syncRecord(&e.Flow, e.State, d.dp.Table().Timeout(&e.Flow, e.State), e.Remove)
			if ok {
				if buf = append(buf, r); len(buf) == cap(buf) {
					d.ha.sync.Send(buf)
					buf = buf[:0]
				}
			}
		})
		if len(buf) > 0 {
			d.ha.sync.Send(buf)
			buf = buf[:0]
		}
		if time.Now().After(next) && len(owned) > 0 && d.ha.refreshing.CompareAndSwap(false, true) {
			next = time.Now().Add(refresh)
			// The walk runs on its own goroutine, so the rings keep being
			// drained meanwhile (Send is safe from any goroutine).
			d.wg.Add(1)
			go func() { defer d.wg.Done(); defer d.ha.refreshing.Store(false); d.refreshPeer(owned) }()
		}
	}
}

// refreshPeer resends every flow of the VIPs in owned, so that the
// peer's timers of idle flows agree with ours.
func (d *Daemon) refreshPeer(owned map[netip.Addr]bool) {
	buf := make([]flowsync.Record, 0, 512)
	for r := range d.syncWalkOf(func(vip [4]byte) bool { return owned[netip.AddrFrom4(vip)] }) {
		if buf = append(buf, r); len(buf) == cap(buf) {
			d.ha.sync.Send(buf)
			buf = buf[:0]
		}
	}
	if len(buf) > 0 {
		d.ha.sync.Send(buf)
	}
}

// syncWalk yields every live flow of the table as a Record, for bulk
// transfers.
func (d *Daemon) syncWalk() iter.Seq[flowsync.Record] {
	return d.syncWalkOf(func([4]byte) bool { return true })
}

// syncWalkOf yields the live flows whose original destination (the VIP)
// keep accepts, as Records.
func (d *Daemon) syncWalkOf(keep func(vip [4]byte) bool) iter.Seq[flowsync.Record] {
	return func(yield func(flowsync.Record) bool) {
		d.dp.Table().Range(func(r conntrack.Record[conntrack.Key4]) bool {
			if !keep(r.Flow.Orig.Dst) {
				return true
			}
			rec, ok := d.syncRecord(&r.Flow, r.State, r.Remaining, false)
			if !ok {
				return true
			}
			return yield(rec)
		})
	}
}

func tuple(k conntrack.Key4) flowsync.Tuple {
	return flowsync.Tuple{Src: netip.AddrFrom4(k.Src), Dst: netip.AddrFrom4(k.Dst), SrcPort: k.SrcPort, DstPort: k.DstPort, Proto: k.Proto}
}

func key4(t flowsync.Tuple) (conntrack.Key4, bool) {
	if !t.Src.Is4() || !t.Dst.Is4() {
		return conntrack.Key4{}, false
	}
	return conntrack.Key4{Src: t.Src.As4(), Dst: t.Dst.As4(), SrcPort: t.SrcPort, DstPort: t.DstPort, Proto: t.Proto}, true
}

// syncRecord turns a flow into the Record the peer rebuilds it from.
func (d *Daemon) syncRecord(f *conntrack.Flow[conntrack.Key4], st conntrack.State, rem time.Duration, remove bool) (flowsync.Record, bool) {
	n, ok := d.dp.Names(f)
	if !ok {
		return flowsync.Record{}, false
	}
	r := flowsync.Record{Kind: flowsync.KindUpdate, Orig: tuple(f.Orig), HasReply: f.HasReply, OneWay: f.OneWay,
		State: uint8(st), Remaining: rem, Owner: f.Owner, PersistTimeout: f.PersistTimeout,
		Service: flowsync.Service{VIP: netip.AddrFrom4(n.VIP), Proto: n.Proto, Port: n.Port},
		Backend: netip.AddrPortFrom(netip.AddrFrom4(n.BackendAddr), n.BackendPort)}
	if f.HasReply {
		r.Reply, r.Local = tuple(f.Reply), netip.AddrFrom4(n.Local)
	}
	if remove {
		r.Kind, r.State, r.Remaining = flowsync.KindRemove, 0, 0
	}
	return r, true
}

// syncImporter installs the peer's records in the dataplane.
type syncImporter struct{ d *Daemon }

var _ flowsync.LateImporter = syncImporter{}

func (si syncImporter) Import(r flowsync.Record) error {
	f, err := si.flow(r)
	if err != nil {
		return err
	}
	if r.Kind == flowsync.KindRemove {
		si.d.dp.RemoveFlow(&f)
		return nil
	}
	return si.d.dp.ImportFlow(conntrack.Record[conntrack.Key4]{Flow: f, State: conntrack.State(r.State), Remaining: r.Remaining})
}

// ImportLate takes a record that arrived after later ones (resent for a
// lost message): it may install a flow the table lacks, but never changes
// one that is there, which a later record may have set (dataplane
// ImportNewFlow). A removal is a removal whenever it comes.
func (si syncImporter) ImportLate(r flowsync.Record) error {
	if r.Kind == flowsync.KindRemove {
		return si.Import(r)
	}
	f, err := si.flow(r)
	if err != nil {
		return err
	}
	_, err = si.d.dp.ImportNewFlow(conntrack.Record[conntrack.Key4]{Flow: f, State: conntrack.State(r.State), Remaining: r.Remaining})
	return err
}

// flow converts r into a flow of this dataplane, its names resolved to
// our IDs.
func (si syncImporter) flow(r flowsync.Record) (conntrack.Flow[conntrack.Key4], error) {
	var f conntrack.Flow[conntrack.Key4]
	var ok bool
	if f.Orig, ok = key4(r.Orig); !ok {
		return f, fmt.Errorf("sync: not an IPv4 flow")
	}
	f.HasReply, f.OneWay, f.Owner, f.PersistTimeout = r.HasReply, r.OneWay, r.Owner, r.PersistTimeout
	n := dataplane.FlowNames{Proto: r.Service.Proto, Port: r.Service.Port, BackendPort: r.Backend.Port()}
	if !r.Service.VIP.Is4() || !r.Backend.Addr().Is4() {
		return f, fmt.Errorf("sync: not an IPv4 service or backend")
	}
	n.VIP, n.BackendAddr = r.Service.VIP.As4(), r.Backend.Addr().As4()
	if r.HasReply {
		if f.Reply, ok = key4(r.Reply); !ok || !r.Local.Is4() {
			return f, fmt.Errorf("sync: full-NAT flow without an IPv4 reply tuple")
		}
		n.Local = r.Local.As4()
	}
	return f, si.d.dp.Resolve(n, &f)
}

// VRRP returns the VRRP router's snapshot; ok is false without HA.
func (d *Daemon) VRRP() (vrrp.Snapshot, bool) {
	if d.ha == nil || d.ha.router == nil {
		return vrrp.Snapshot{}, false
	}
	return d.ha.router.Snapshot(), true
}

// Sync returns the sync endpoint's snapshot and the dataplane's sync
// rings' counters; ok is false without HA.Sync.
func (d *Daemon) Sync() (flowsync.Snapshot, dataplane.SyncStats, bool) {
	if d.ha == nil || d.ha.sync == nil {
		return flowsync.Snapshot{}, dataplane.SyncStats{}, false
	}
	return d.ha.sync.Stats(), d.dp.SyncStats(), true
}
