package dataplane

import (
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/culvert-lb/culvert/conntrack"
	"github.com/culvert-lb/culvert/dataplane/sched"
	"github.com/culvert-lb/culvert/internal/header"
	"github.com/culvert-lb/culvert/nat"
	"github.com/culvert-lb/culvert/nic"
)

// Options are fixed when the dataplane is created: they size memory.
type Options struct {
	// Workers is the number of workers (one per NIC queue).
	Workers int
	// Links is the number of dataplane links (interfaces): 1 one-armed, 2
	// two-armed. Every worker has one queue on each; 0 means 1.
	Links int
	// MaxFlows is the connection table's capacity; 0 means 1<<20.
	MaxFlows int
	// Timeouts of the connection table; zero value means defaults.
	Timeouts conntrack.Timeouts
	// MaxBackends bounds backend IDs; 0 means 65536.
	MaxBackends int
	// MaxServices bounds service IDs; 0 means 4096. Each worker keeps
	// 48 bytes of counters per service ID and per backend ID (3.3 MB at
	// the defaults, in pages untouched until an ID carries traffic).
	MaxServices int
	// PortLo..PortHi is the SNAT source port range of every local address;
	// zero means 1024..65535. Each worker owns a disjoint share.
	PortLo, PortHi uint16
	// PortQuarantine keeps a released SNAT port unused this long; zero
	// means nat.DefaultQuarantine (60 s). Below that only for tests.
	PortQuarantine time.Duration
	// Clock returns monotonic nanoseconds. Nil means the process clock.
	// Workers read it once per batch.
	Clock func() int64
	// Seed seeds the connection table's own hash; 0 picks one at random.
	Seed uint64
	// SyncQueue, when positive, gives each worker and the sweeper a ring of
	// that many connection-table changes for HA sync (see DrainSync); 0
	// means no sync: the workers queue nothing.
	SyncQueue int
}

// Dataplane holds what the workers share: the connection table, the
// compiled configuration and the SNAT port pools. Apply may be called from
// any goroutine (one at a time); workers see the new tables at their next
// batch.
type Dataplane struct {
	opt    Options
	ct     *conntrack.Table[conntrack.Key4]
	active *sched.Active
	clock  func() int64

	cfg    atomic.Pointer[compiled]
	locals atomic.Pointer[[]*localAddr] // registry, append-only; index = Flow.Local

	mu      sync.Mutex // serialises Apply
	workers []*Worker

	sweepNow int64 // set before each Sweep for the expiry callback
	expired  func(*conntrack.Flow[conntrack.Key4])

	sweepSync    *syncRing         // the sweeper's removals; nil without Options.SyncQueue
	importReader *conntrack.Reader // ImportFlow's, made at its first call
}

// localAddr is one SNAT source address with one port pool per worker.
type localAddr struct {
	addr  [4]byte
	idx   uint16 // position in the registry: Flow.Local
	pools []*nat.PortPool
}

// compiled is a Config turned into lookup tables. Immutable once published.
type compiled struct {
	cfg   *Config
	svcs  []svcState
	byKey map[uint64]uint32 // svcKey -> service ID, single-port services
	// ranges holds the ranged services by svcKey(vip, proto, 0). A VIP
	// carries a handful of ranges at most, so newFlow scans them.
	ranges   map[uint64][]portRange
	vips     map[[4]byte]bool
	localSet map[[4]byte]bool
	locals   []*localAddr // in Config.LocalAddrs order
	links    []linkState  // Options.Links of them
	client   uint8        // Config.ClientLink
}

// linkState is a Link with its defaults resolved.
type linkState struct {
	mac header.MAC
	mtu int
}

type svcState struct {
	svc     *Service
	sched   sched.Scheduler
	locals  []*localAddr // the service's SNAT addresses (Service.Locals); nil: all
	live    bool
	persist uint32          // seconds
	member  map[uint32]bool // backend IDs in the pool (for persistence)
}

// portRange is a ranged service's ports, lo..hi inclusive.
type portRange struct {
	lo, hi uint16
	id     uint32
}

// lookup returns the service owning (vip, proto, port): an exact port
// first, then the ranges of (vip, proto). It allocates nothing. With eight
// ranges on a VIP and the last one hit, BenchmarkPortRangeLookup measured
// 11-25 ns on the shared 2-core build machine: a scan is enough.
func (c *compiled) lookup(vip [4]byte, proto uint8, port uint16) (uint32, bool) {
	if id, ok := c.byKey[svcKey(vip, proto, port)]; ok {
		return id, true
	}
	if len(c.ranges) == 0 {
		return 0, false
	}
	for _, r := range c.ranges[svcKey(vip, proto, 0)] {
		if r.lo <= port && port <= r.hi {
			return r.id, true
		}
	}
	return 0, false
}

func svcKey(vip [4]byte, proto uint8, port uint16) uint64 {
	return uint64(vip[0])<<56 | uint64(vip[1])<<48 | uint64(vip[2])<<40 | uint64(vip[3])<<32 |
		uint64(proto)<<16 | uint64(port)
}

// New creates a dataplane with an empty configuration.
func New(opt Options) (*Dataplane, error) {
	if opt.Workers < 1 || opt.Workers > 1024 {
		return nil, fmt.Errorf("dataplane: %d workers (want 1..1024)", opt.Workers)
	}
	if opt.Links == 0 {
		opt.Links = 1
	}
	if opt.Links < 1 || opt.Links > MaxLinks {
		return nil, fmt.Errorf("dataplane: %d links (want 1..%d)", opt.Links, MaxLinks)
	}
	if opt.MaxFlows == 0 {
		opt.MaxFlows = 1 << 20
	}
	if opt.MaxBackends == 0 {
		opt.MaxBackends = 65536
	}
	if opt.MaxServices == 0 {
		opt.MaxServices = 4096
	}
	if opt.PortLo == 0 && opt.PortHi == 0 {
		opt.PortLo, opt.PortHi = nat.DefaultPortLo, nat.DefaultPortHi
	}
	if opt.PortHi < opt.PortLo || int(opt.PortHi-opt.PortLo)+1 < opt.Workers {
		return nil, fmt.Errorf("dataplane: port range %d-%d too small for %d workers", opt.PortLo, opt.PortHi, opt.Workers)
	}
	if opt.PortQuarantine == 0 {
		opt.PortQuarantine = nat.DefaultQuarantine
	}
	if opt.Timeouts == (conntrack.Timeouts{}) {
		opt.Timeouts = conntrack.DefaultTimeouts()
	}
	ct, err := conntrack.New[conntrack.Key4](conntrack.Config{MaxFlows: opt.MaxFlows, Timeouts: opt.Timeouts, Seed: opt.Seed})
	if err != nil {
		return nil, fmt.Errorf("dataplane: %w", err)
	}
	d := &Dataplane{opt: opt, ct: ct, active: sched.NewActive(opt.MaxBackends), clock: opt.Clock}
	if d.clock == nil {
		start := time.Now()
		d.clock = func() int64 { return int64(time.Since(start)) }
	}
	d.expired = d.onExpired
	if opt.SyncQueue > 0 {
		d.sweepSync = newSyncRing(opt.SyncQueue)
	}
	empty := []*localAddr{}
	d.locals.Store(&empty)
	if err := d.Apply(&Config{}); err != nil {
		return nil, err
	}
	return d, nil
}

// Table returns the connection table (for show commands and HA sync).
func (d *Dataplane) Table() *conntrack.Table[conntrack.Key4] { return d.ct }

// Active returns the live flow count per backend ID.
func (d *Dataplane) Active() *sched.Active { return d.active }

// Apply validates c, compiles it and swaps it in. On error the running
// configuration stays. Flows already in the table keep their backend while
// its ID is not Removed.
func (d *Dataplane) Apply(c *Config) error {
	if err := c.Validate(); err != nil {
		return err
	}
	if len(c.Backends) > d.opt.MaxBackends {
		return fmt.Errorf("dataplane: %d backends, at most %d", len(c.Backends), d.opt.MaxBackends)
	}
	if len(c.Services) > d.opt.MaxServices {
		return fmt.Errorf("dataplane: %d services, at most %d", len(c.Services), d.opt.MaxServices)
	}
	if n := len(c.Links); n != 0 && n != d.opt.Links {
		return fmt.Errorf("dataplane: %d links configured, the dataplane has %d", n, d.opt.Links)
	}
	if int(c.ClientLink) >= d.opt.Links {
		return fmt.Errorf("dataplane: client link %d, the dataplane has %d links", c.ClientLink, d.opt.Links)
	}
	for i, b := range c.Backends {
		if !b.Removed && int(b.Link) >= d.opt.Links {
			return fmt.Errorf("dataplane: backends[%d]: link %d, the dataplane has %d links", i, b.Link, d.opt.Links)
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	comp := &compiled{
		cfg:      c,
		svcs:     make([]svcState, len(c.Services)),
		byKey:    map[uint64]uint32{},
		ranges:   map[uint64][]portRange{},
		vips:     map[[4]byte]bool{},
		localSet: map[[4]byte]bool{},
		links:    make([]linkState, d.opt.Links),
		client:   c.ClientLink,
	}
	mtu := c.MTU
	if mtu == 0 {
		mtu = 1500
	}
	for i := range comp.links {
		l := Link{MAC: c.MAC}
		if len(c.Links) > 0 {
			l = c.Links[i]
		}
		comp.links[i] = linkState{mac: l.MAC, mtu: l.MTU}
		if l.MTU == 0 {
			comp.links[i].mtu = mtu
		}
	}
	size := c.MaglevSize
	if size == 0 {
		size = sched.DefaultMaglevSize
	}
	for i := range c.Services {
		s := &c.Services[i]
		if s.Removed {
			continue
		}
		pool := make([]sched.Backend, 0, len(s.Backends))
		member := make(map[uint32]bool, len(s.Backends))
		for _, id := range s.Backends {
			b := c.Backends[id]
			port := b.Port
			if port == 0 {
				port = s.Port
			}
			pool = append(pool, sched.Backend{ID: id, Addr: netip.AddrFrom4(b.Addr), Port: port, Weight: b.Weight})
			member[id] = true
		}
		sc, err := sched.New(s.Scheduler, c.HashKey, size, pool, d.active)
		if err != nil {
			return fmt.Errorf("services[%d]: %w", i, err)
		}
		comp.svcs[i] = svcState{svc: s, sched: sc, live: true, persist: uint32(s.Persistence / time.Second), member: member}
		if last := s.LastPort(); last != s.Port {
			rk := svcKey(s.VIP, s.Proto, 0)
			comp.ranges[rk] = append(comp.ranges[rk], portRange{lo: s.Port, hi: last, id: uint32(i)})
		} else {
			comp.byKey[svcKey(s.VIP, s.Proto, s.Port)] = uint32(i)
		}
		comp.vips[s.VIP] = true
	}
	reg := *d.locals.Load()
	for _, a := range c.LocalAddrs {
		comp.localSet[a] = true
		var la *localAddr
		for _, r := range reg {
			if r.addr == a {
				la = r
			}
		}
		if la == nil {
			if len(reg) >= 1<<16 {
				return fmt.Errorf("dataplane: more than 65536 local addresses over the process lifetime")
			}
			la = &localAddr{addr: a, idx: uint16(len(reg))}
			for _, share := range nat.SplitPorts(d.opt.PortLo, d.opt.PortHi, d.opt.Workers) {
				pool := nat.NewPortPool(share[0], share[1], d.opt.PortQuarantine)
				pool.Shuffle()
				la.pools = append(la.pools, pool)
			}
			reg = append(reg[:len(reg):len(reg)], la)
		}
		comp.locals = append(comp.locals, la)
	}
	for i := range comp.svcs {
		if s := comp.svcs[i].svc; s != nil {
			for _, li := range s.Locals {
				comp.svcs[i].locals = append(comp.svcs[i].locals, comp.locals[li])
			}
		}
	}
	d.locals.Store(&reg)
	d.cfg.Store(comp)
	return nil
}

// Config returns the configuration in force.
func (d *Dataplane) Config() *Config { return d.cfg.Load().cfg }

// Sweep expires up to budget flows' worth of the connection table, returning
// SNAT ports to their pools and backend counts to the scheduler. Call it
// from one goroutine, a few times a second (RunSweeper does).
func (d *Dataplane) Sweep(budget int) int {
	d.sweepNow = d.clock()
	return d.ct.Sweep(conntrack.Time(d.sweepNow), budget, d.expired)
}

func (d *Dataplane) onExpired(f *conntrack.Flow[conntrack.Key4]) {
	if d.sweepSync != nil {
		d.sweepSync.push(f, 0, true)
	}
	if f.Orig.Proto == conntrack.ProtoPersist {
		return
	}
	if int(f.Backend) < d.active.Cap() {
		d.active.Dec(f.Backend)
	}
	if !f.HasReply {
		return
	}
	// A flow imported from an HA peer may name a local address this
	// process never had; its port was never ours to return. Its Owner is
	// the peer's worker, which need not be ours (the peer may run another
	// number of workers, so another split of the port range): the port
	// goes to the pool whose share holds it. Release changes nothing if
	// that pool never handed the port out.
	//
	// Known imprecision: the pool's out bit does not say which flow holds
	// a port. An imported flow and a local one may share a port toward
	// different backends; the imported one's expiry then gives the port
	// back while the local one still uses it. The table never lets two
	// live flows hold one reply tuple, so on the wire this costs at most a
	// clash and another try (snatTries); the port's quarantine may be cut
	// short once.
	reg := *d.locals.Load()
	if int(f.Local) >= len(reg) || reg[f.Local].addr != f.Reply.Dst {
		return
	}
	for _, pool := range reg[f.Local].pools {
		if lo, hi := pool.Range(); lo <= f.Reply.DstPort && f.Reply.DstPort <= hi {
			pool.Release(f.Reply.DstPort, d.sweepNow)
			return
		}
	}
}

// Stats sums the counters of every worker.
func (d *Dataplane) Stats() Stats {
	d.mu.Lock()
	ws := d.workers
	d.mu.Unlock()
	var s Stats
	for _, w := range ws {
		s.Add(w.Stats())
	}
	return s
}

// WorkerStats returns the counters of each worker, indexed by worker ID
// (queue number, 0..Options.Workers-1); an ID with no worker yet has zero
// counters. Safe from any goroutine; it allocates.
func (d *Dataplane) WorkerStats() []Stats {
	d.mu.Lock()
	ws := d.workers
	d.mu.Unlock()
	out := make([]Stats, d.opt.Workers)
	for _, w := range ws {
		out[w.id] = w.Stats()
	}
	return out
}

// ServiceStats returns the counters of every service of the configuration
// in force, indexed by service ID (removed IDs included: their counts
// stay), summed over workers. Safe from any goroutine; it allocates.
// Counts trail the workers by at most one Poll.
func (d *Dataplane) ServiceStats() []ServiceStats {
	d.mu.Lock()
	ws := d.workers
	d.mu.Unlock()
	out := make([]ServiceStats, min(len(d.Config().Services), d.opt.MaxServices))
	for _, w := range ws {
		for id := range out {
			p := &w.svcs.pub[id]
			out[id].Packets += p.packets.Load()
			out[id].Bytes += p.bytes.Load()
			out[id].NewFlows += p.newFlows.Load()
		}
	}
	return out
}

// BackendStats returns the counters of every backend of the configuration
// in force, indexed by backend ID (removed IDs included), summed over
// workers, with each one's live flow count (Active). Safe from any
// goroutine; it allocates.
func (d *Dataplane) BackendStats() []BackendStats {
	d.mu.Lock()
	ws := d.workers
	d.mu.Unlock()
	out := make([]BackendStats, min(len(d.Config().Backends), d.opt.MaxBackends))
	for _, w := range ws {
		for id := range out {
			p := &w.bes.pub[id]
			out[id].Packets += p.packets.Load()
			out[id].Bytes += p.bytes.Load()
			out[id].NewFlows += p.newFlows.Load()
		}
	}
	for id := range out {
		out[id].Active = d.active.Load(uint32(id))
	}
	return out
}

// NewWorker creates the worker for queue number id (0..Workers-1), with
// one queue per link: qs[i] is its queue on link i (Options.Links of them;
// one-armed, the one queue).
func (d *Dataplane) NewWorker(id int, qs ...nic.Queue) (*Worker, error) {
	if id < 0 || id >= d.opt.Workers {
		return nil, fmt.Errorf("dataplane: worker %d out of range 0..%d", id, d.opt.Workers-1)
	}
	if len(qs) != d.opt.Links {
		return nil, fmt.Errorf("dataplane: worker %d: %d queues for %d links", id, len(qs), d.opt.Links)
	}
	w := &Worker{
		d:      d,
		id:     uint16(id),
		reader: d.ct.NewReader(),
		c:      new(counters),
		links:  make([]workerLink, len(qs)),
		svcs:   newFlowCounts(d.opt.MaxServices, BatchSize*len(qs)),
		bes:    newFlowCounts(d.opt.MaxBackends, BatchSize*len(qs)),
	}
	if d.opt.SyncQueue > 0 {
		w.sync = newSyncRing(d.opt.SyncQueue)
	}
	for i, q := range qs {
		if q.Headroom() < nat.IPIPOverhead {
			return nil, fmt.Errorf("dataplane: link %d: queue headroom %d < %d needed for ip-in-ip", i, q.Headroom(), nat.IPIPOverhead)
		}
		// A batch from each link may all leave by one.
		w.links[i] = workerLink{q: q, umem: q.UMEM(), chunk: uint64(q.ChunkSize()), tx: make([]nic.Desc, BatchSize*len(qs)), tags: make([]flowTag, BatchSize*len(qs))}
	}
	d.mu.Lock()
	d.workers = append(d.workers, w)
	d.mu.Unlock()
	return w, nil
}
