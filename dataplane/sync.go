package dataplane

import (
	"errors"
	"sync/atomic"

	"github.com/culvert-lb/culvert/conntrack"
)

// # Connection sync hooks
//
// An HA pair streams connection-table changes from the master to the
// backup. The dataplane's part is to say what changed without ever
// waiting for the sync: with Options.SyncQueue set, each worker owns a
// single-producer/single-consumer ring of SyncEvents, and the sweeper
// one more. A worker pushes when it inserts a flow (new connection,
// persistence template) and when Track moves a flow to another state
// (SYN_SENT to ESTABLISHED, FIN_WAIT, ...); the sweeper pushes when a
// flow leaves the table. One goroutine, the sync sender, drains every
// ring with DrainSync. A full ring drops the event and counts it
// (SyncStats.Dropped): the periodic refresh walk of the whole table (the
// sender's job, with Table().Range) repairs what a drop lost.
//
// Packets of a flow whose state does not change push nothing: the
// refresh walk carries their deadlines to the peer.

// SyncEvent is one change of the connection table for the HA peer.
type SyncEvent struct {
	Flow   conntrack.Flow[conntrack.Key4]
	State  conntrack.State // the state after the change; zero with Remove
	Remove bool            // the flow left the table
}

// SyncStats are the sync rings' counters.
type SyncStats struct {
	Pushed  uint64 // events queued
	Dropped uint64 // events lost to a full ring
	Backlog int    // events queued and not yet drained
}

// syncRing is a bounded SPSC ring of SyncEvents. push belongs to one
// producer (a worker, or the sweeper), drain to the sync goroutine; they
// meet only in head (written by drain) and tail (written by push).
type syncRing struct {
	_       [64]byte
	tail    atomic.Uint64 // next slot push writes; written by the producer
	dropped atomic.Uint64 // written by the producer
	_       [48]byte
	head    atomic.Uint64 // next slot drain reads; written by the consumer
	_       [56]byte
	buf     []SyncEvent
	mask    uint64
}

func newSyncRing(size int) *syncRing {
	n := 1
	for n < size {
		n <<= 1
	}
	return &syncRing{buf: make([]SyncEvent, n), mask: uint64(n - 1)}
}

// push queues e, or counts a drop when the ring is full. It never blocks
// or allocates.
func (r *syncRing) push(f *conntrack.Flow[conntrack.Key4], st conntrack.State, remove bool) {
	t := r.tail.Load()
	if t-r.head.Load() > r.mask {
		r.dropped.Add(1)
		return
	}
	e := &r.buf[t&r.mask]
	e.Flow, e.State, e.Remove = *f, st, remove
	r.tail.Store(t + 1)
}

// drain calls fn for every queued event, oldest first, and returns how
// many there were. e is valid only during the call.
func (r *syncRing) drain(fn func(e *SyncEvent)) int {
	h, t := r.head.Load(), r.tail.Load()
	for i := h; i < t; i++ {
		fn(&r.buf[i&r.mask])
	}
	r.head.Store(t)
	return int(t - h)
}

// DrainSync calls fn for each queued change of every worker and of the
// sweeper, and returns how many it passed. Call it from one goroutine
// (the sync sender); e is valid only during the call. With no
// Options.SyncQueue it does nothing.
func (d *Dataplane) DrainSync(fn func(e *SyncEvent)) int {
	n := 0
	d.eachSyncRing(func(r *syncRing) { n += r.drain(fn) })
	return n
}

// SyncStats sums the sync rings' counters. Safe from any goroutine.
func (d *Dataplane) SyncStats() SyncStats {
	var s SyncStats
	d.eachSyncRing(func(r *syncRing) {
		t := r.tail.Load()
		s.Pushed += t
		s.Dropped += r.dropped.Load()
		s.Backlog += int(t - r.head.Load())
	})
	return s
}

// eachSyncRing calls fn with the sweeper's ring and each worker's.
func (d *Dataplane) eachSyncRing(fn func(*syncRing)) {
	if d.sweepSync == nil {
		return
	}
	fn(d.sweepSync)
	d.mu.Lock()
	ws := d.workers
	d.mu.Unlock()
	for _, w := range ws {
		fn(w.sync)
	}
}

// ErrUnknownName is returned by ImportFlow when the record names a
// service, backend or local address this configuration does not have.
var ErrUnknownName = errors.New("dataplane: the flow names a service, backend or local address not configured here")

// FlowNames is the identity of a flow's service, backend and local
// address by value, the same on two appliances whose IDs differ.
type FlowNames struct {
	VIP         [4]byte
	Proto       uint8
	Port        uint16 // the service's (first) port
	BackendAddr [4]byte
	BackendPort uint16
	Local       [4]byte // zero without full NAT
}

// Names returns f's service, backend and local address by value, from
// the configuration in force; ok is false when f names an ID it does
// not have. Control path.
func (d *Dataplane) Names(f *conntrack.Flow[conntrack.Key4]) (n FlowNames, ok bool) {
	c := d.Config()
	if int(f.Service) >= len(c.Services) || int(f.Backend) >= len(c.Backends) {
		return n, false
	}
	s, b := &c.Services[f.Service], &c.Backends[f.Backend]
	n = FlowNames{VIP: s.VIP, Proto: s.Proto, Port: s.Port, BackendAddr: b.Addr, BackendPort: b.Port}
	if f.HasReply {
		reg := *d.locals.Load()
		if int(f.Local) >= len(reg) {
			return n, false
		}
		n.Local = reg[f.Local].addr
	}
	return n, true
}

// Resolve turns names back into this dataplane's IDs, filling in
// f.Service, f.Backend and f.Local. Control path.
func (d *Dataplane) Resolve(n FlowNames, f *conntrack.Flow[conntrack.Key4]) error {
	comp := d.cfg.Load()
	c := comp.cfg
	id, ok := comp.lookup(n.VIP, n.Proto, n.Port)
	if !ok || c.Services[id].Port != n.Port {
		return ErrUnknownName
	}
	svc := int(id)
	be := -1
	for _, id := range c.Services[svc].Backends {
		if b := &c.Backends[id]; !b.Removed && b.Addr == n.BackendAddr && b.Port == n.BackendPort {
			be = int(id)
			break
		}
	}
	if be < 0 {
		return ErrUnknownName
	}
	f.Service, f.Backend = uint32(svc), uint32(be)
	if f.HasReply {
		found := false
		for _, la := range *d.locals.Load() {
			if la.addr == n.Local {
				f.Local, found = la.idx, true
				break
			}
		}
		if !found {
			return ErrUnknownName
		}
	}
	return nil
}

// ImportFlow installs a flow received from the HA peer (see
// conntrack.Table.Import) and counts it against its backend when it is
// new here. Its SNAT port stays the peer's: should this appliance's pool
// hand the same port out toward the same backend, Insert refuses the
// clash, the worker tries another port (see snatTries), and the port
// stays out of the pool until the imported flow expires, when
// the sweeper returns it to the pool whose share holds it (not by Owner:
// the peer may split the port range over another number of workers). Control path, one
// goroutine.
func (d *Dataplane) ImportFlow(r conntrack.Record[conntrack.Key4]) error {
	return d.importFlow(r, d.findFlow(&r.Flow, func(*conntrack.Entry[conntrack.Key4]) {}))
}

// importFlow is ImportFlow once it is known whether the table holds the
// flow already.
func (d *Dataplane) importFlow(r conntrack.Record[conntrack.Key4], known bool) error {
	if err := d.ct.Import(r, conntrack.Time(d.clock())); err != nil {
		return err
	}
	if !known && r.Flow.Orig.Proto != conntrack.ProtoPersist && int(r.Flow.Backend) < d.active.Cap() {
		d.active.Inc(r.Flow.Backend)
	}
	return nil
}

// ImportNewFlow is ImportFlow for a record that arrived after later ones
// (resent for a lost message): it installs the flow only when the table
// has nothing under its original tuple, live or ended and not yet swept,
// so that an old record never undoes what a newer one set (a state, a
// removal). It reports whether it installed the flow. Control path, the
// same goroutine as ImportFlow.
func (d *Dataplane) ImportNewFlow(r conntrack.Record[conntrack.Key4]) (bool, error) {
	if d.importReader == nil {
		d.importReader = d.ct.NewReader()
	}
	d.importReader.Begin()
	taken := d.ct.Lookup(&r.Flow.Orig).E != nil
	d.importReader.End()
	if taken {
		return false, nil
	}
	return true, d.importFlow(r, false)
}

// RemoveFlow ends the flow whose original tuple is orig, if it is here
// and equal to f (a flow the HA peer removed): see conntrack.Table.Expire.
// It reports whether it did. Control path, the same goroutine as
// ImportFlow.
func (d *Dataplane) RemoveFlow(f *conntrack.Flow[conntrack.Key4]) bool {
	removed := false
	d.findFlow(f, func(e *conntrack.Entry[conntrack.Key4]) { removed = d.ct.Expire(e) })
	return removed
}

// findFlow looks f up by its original tuple and, if the table holds f
// exactly, calls fn with its entry inside a reader bracket (fn must not
// keep it) and reports true. The importing goroutine's path: ImportFlow
// and RemoveFlow.
func (d *Dataplane) findFlow(f *conntrack.Flow[conntrack.Key4], fn func(*conntrack.Entry[conntrack.Key4])) bool {
	if d.importReader == nil {
		d.importReader = d.ct.NewReader()
	}
	d.importReader.Begin()
	defer d.importReader.End()
	ref := d.ct.Lookup(&f.Orig)
	if ref.E == nil || ref.Dir != conntrack.DirOriginal || *ref.E.Flow() != *f {
		return false
	}
	fn(ref.E)
	return true
}
