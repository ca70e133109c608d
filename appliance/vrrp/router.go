package vrrp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// RouterConfig configures a Router: the VRRP groups on one interface, which
// share one socket. Start from DefaultRouterConfig.
type RouterConfig struct {
	// Interface is the link the groups run on.
	Interface string
	// Addr is this router's primary address on Interface (advertisement
	// source, tie-breaker); zero picks the interface's first IPv4 address.
	Addr netip.Addr
	// Peers, when set, replace multicast with unicast to each peer
	// (keepalived's unicast_peer); see ConnConfig.Peers.
	Peers []netip.Addr
	// Groups are the virtual routers, at most one per VRID.
	Groups []GroupConfig
	// GARPRepeat is how many more gratuitous ARP rounds follow the one sent
	// at once on becoming master, GARPInterval apart; they stop if the group
	// stops being master. DefaultRouterConfig sets 2; zero sends only the
	// first round.
	GARPRepeat int
	// GARPInterval separates the rounds; zero means 1s.
	GARPInterval time.Duration
	// DontTrackInterface turns off the implicit tracking of Interface
	// itself. By default every group tracks it with weight 0, so that a
	// router whose link is down (IFF_UP and IFF_RUNNING not both set) goes
	// to fault instead of believing itself master of a segment it cannot
	// reach (keepalived's dont_track_primary). A group that lists Interface
	// in TrackInterfaces itself gets the weight it gives instead.
	DontTrackInterface bool
}

// GroupConfig is one virtual router of a Router.
type GroupConfig struct {
	// Node is the state machine's configuration. Node.Addr must be zero or
	// equal to RouterConfig.Addr: the Router fills it in.
	Node Config
	// GARP lists addresses to announce with gratuitous ARP on becoming
	// master in addition to Node.Addrs: addresses the appliance answers for
	// (SNAT addresses) that are not advertised. Duplicates are sent once.
	// Router.SetAddrs replaces the list, and Node.Addrs, while running.
	GARP []netip.Addr
	// TrackInterfaces are links whose state the group follows
	// (keepalived's track_interface): while one is down, a positive weight
	// lowers the priority by that much (never below 1) and weight 0 puts
	// the group in fault.
	TrackInterfaces []Track
	// Track are conditions the caller reports with Router.SetTracked
	// (keepalived's track_script), with the same weights. They start out
	// OK.
	Track []Track
	// CheckAddrs drops advertisements whose address list differs (as a
	// set) from Node.Addrs unless they come from the address owner
	// (priority 255), counting them as RejectAddrMismatch: RFC 5798
	// section 7.1's optional check, which keepalived makes. Off, such
	// advertisements are processed and counted in
	// GroupSnapshot.AddrMismatches; this keeps two appliances whose VIP
	// lists differ during a rolling configuration change from both becoming
	// master.
	CheckAddrs bool
}

// Track names a tracked interface or condition and its weight: 0 faults
// the group while it is down, a positive weight lowers the priority.
type Track struct {
	Name   string
	Weight uint8
}

// DefaultRouterConfig returns a RouterConfig with two gratuitous ARP
// repeats one second apart; the caller sets Interface and Groups.
func DefaultRouterConfig() RouterConfig {
	return RouterConfig{GARPRepeat: 2, GARPInterval: time.Second}
}

// Validate reports every problem in c, each with its location, joined with
// errors.Join.
func (c *RouterConfig) Validate() error {
	var errs []error
	cc := ConnConfig{Interface: c.Interface, Addr: c.Addr, Peers: c.Peers}
	errs = appendJoined(errs, "", cc.validate())
	if c.GARPRepeat < 0 {
		errs = append(errs, fmt.Errorf("garp_repeat: %d: negative", c.GARPRepeat))
	}
	if c.GARPInterval < 0 {
		errs = append(errs, fmt.Errorf("garp_interval: %v: negative", c.GARPInterval))
	}
	if len(c.Groups) == 0 {
		errs = append(errs, errors.New("groups: none"))
	}
	seen := map[uint8]int{}
	for i, g := range c.Groups {
		loc := fmt.Sprintf("groups[%d]", i)
		n := g.Node
		if !n.Addr.IsValid() {
			n.Addr = netip.AddrFrom4([4]byte{0, 0, 0, 1}) // filled in by the Router
		} else if c.Addr.IsValid() && n.Addr != c.Addr {
			errs = append(errs, fmt.Errorf("%s.node.addr: %v: differs from the router's address %v", loc, n.Addr, c.Addr))
		}
		errs = appendJoined(errs, loc+".node.", n.Validate())
		if j, dup := seen[n.VRID]; dup && n.VRID != 0 {
			errs = append(errs, fmt.Errorf("%s.node.vrid: %d: also used by groups[%d]", loc, n.VRID, j))
		}
		seen[n.VRID] = i
		for k, a := range g.GARP {
			if !a.Is4() {
				errs = append(errs, fmt.Errorf("%s.garp[%d]: %v: not an IPv4 address", loc, k, a))
			}
		}
		for _, tl := range []struct {
			name string
			ts   []Track
		}{{"track_interfaces", g.TrackInterfaces}, {"track", g.Track}} {
			names := map[string]bool{}
			for k, t := range tl.ts {
				tloc := fmt.Sprintf("%s.%s[%d]", loc, tl.name, k)
				switch {
				case t.Name == "":
					errs = append(errs, fmt.Errorf("%s.name: empty", tloc))
				case names[t.Name]:
					errs = append(errs, fmt.Errorf("%s.name: %q listed twice", tloc, t.Name))
				}
				names[t.Name] = true
				if t.Weight > 0 && n.Priority == OwnerPriority {
					errs = append(errs, fmt.Errorf("%s.weight: %d: the address owner (priority 255) can only fault (weight 0)", tloc, t.Weight))
				}
			}
		}
	}
	return errors.Join(errs...)
}

// appendJoined appends each error joined in err to errs, prefixed by loc.
func appendJoined(errs []error, loc string, err error) []error {
	if err == nil {
		return errs
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range j.Unwrap() {
			errs = append(errs, fmt.Errorf("%s%w", loc, e))
		}
		return errs
	}
	return append(errs, fmt.Errorf("%s%w", loc, err))
}

// transport is what a Router needs of a Conn; an in-memory link stands in
// for it in tests.
type transport interface {
	Read(b []byte) (int, error) // one IPv4 packet, header included; net.ErrClosed after Close
	Send(a *Advert) error
	Close() error
}

// announcer sends gratuitous ARP.
type announcer interface {
	Announce(addr netip.Addr) error
	Close() error
}

// linkSource reports link state changes of the tracked interfaces.
type linkSource interface {
	// watch calls report for every change until Close, then returns nil.
	watch(report func(name string, up bool)) error
	Close() error
}

// Router runs the VRRP groups of one interface: a driver goroutine owns
// every group's Node, fires its timers, sends the advertisements it asks
// for and reports its transitions; a reader goroutine takes packets off the
// socket, checks them and counts rejects; a watcher goroutine follows the
// tracked interfaces' link state (rtnetlink RTM_NEWLINK/RTM_DELLINK
// events). Received packets reach the driver over a channel; nothing is
// locked on the receive path.
//
// On becoming master a group announces its addresses (Node.Addrs and
// GroupConfig.GARP) with gratuitous ARP from the interface's MAC address,
// at once and then GARPRepeat more times.
//
// The transition callback runs on the driver goroutine, after the
// advertisement that goes with the transition was sent and before the
// gratuitous ARP: no group's timer fires while it runs, so it must return
// quickly (flip dataplane flags, swap steering maps) and must not call
// Stop. SetTracked and Snapshot are safe from any goroutine, the callback
// included.
//
// Build one with NewRouter; the zero value is not usable.
type Router struct {
	cfg          RouterConfig
	addr         netip.Addr
	log          *slog.Logger
	onTransition func(vrid uint8, from, to State)

	conn  transport
	arp   announcer  // nil: the interface has no MAC address, no GARP
	links linkSource // nil: nothing tracks an interface

	groups []*group
	byVRID [256]*group
	ifs    map[string]*trackState // tracked interfaces; read-only after construction
	conds  map[string]*trackState // SetTracked conditions; read-only after construction

	rx   chan received
	wake chan struct{} // a tracked state changed; capacity 1

	lifeMu  sync.Mutex // guards started, stopped
	started bool
	stopped bool
	abrupt  atomic.Bool   // stop without Shutdown (tests: a crash)
	stop    chan struct{} // closed by Stop
	done    chan struct{} // closed when the driver has returned
	wg      sync.WaitGroup

	rejects    [NumRejectReasons]atomic.Uint64 // not attributable to a group
	sendErrors atomic.Uint64
	garpErrors atomic.Uint64
	readErrors atomic.Uint64

	running     bool // driver: groups have been started
	sendFailing bool // driver: last send failed (log once per outage)
}

// group is one virtual router. The driver owns every field but stats.
type group struct {
	vrid   uint8
	cfg    GroupConfig
	node   *Node
	garp   []netip.Addr // Node.Addrs then GARP, without duplicates
	tracks []groupTrack

	state    State
	fault    bool
	garpLeft int
	garpNext time.Time

	// vips is the advertised address list, cfg.Node.Addrs until SetAddrs
	// replaces it: written by the driver, read by the reader (classify).
	vips atomic.Pointer[[]netip.Addr]
	// next holds the lists SetAddrs was given, for the driver to take in
	// (retrack). Written by SetAddrs, taken by the driver.
	next atomic.Pointer[groupAddrs]

	// base is the configured priority, before tracking: cfg.Node.Priority
	// until SetPriority changes it. Written by SetPriority, read by the
	// driver and Snapshot.
	base atomic.Uint32

	stats groupStats
}

type groupTrack struct {
	kind   string // "interface" or "track"
	name   string
	weight uint8
	st     *trackState
}

// trackState is one tracked interface or condition, shared by every group
// that names it.
type trackState struct{ up atomic.Bool }

// groupStats are the counters Snapshot reads, written with atomics.
type groupStats struct {
	state          atomic.Uint32
	fault          atomic.Bool
	priority       atomic.Uint32 // effective
	master         atomic.Uint32 // IPv4 of the master seen, 0 if none
	sent           atomic.Uint64
	received       atomic.Uint64
	addrMismatches atomic.Uint64
	transitions    atomic.Uint64
	lastTransition atomic.Int64 // UnixNano, 0 if none
	rejects        [NumRejectReasons]atomic.Uint64
}

// received is an advertisement that passed every check, on its way from
// the reader to the driver. Its address list is not carried: Node does not
// look at it.
type received struct {
	from     netip.Addr
	vrid     uint8
	priority uint8
	interval time.Duration
}

// newRouter builds a Router over already-open sockets. cfg is valid and
// cfg.Addr is set.
func newRouter(cfg RouterConfig, log *slog.Logger, onTransition func(vrid uint8, from, to State), conn transport, arp announcer, links linkSource) (*Router, error) {
	if log == nil {
		log = slog.Default()
	}
	if cfg.GARPInterval == 0 {
		cfg.GARPInterval = time.Second
	}
	r := &Router{
		addr:         cfg.Addr,
		log:          log.With("component", "vrrp", "interface", cfg.Interface),
		onTransition: onTransition,
		conn:         conn,
		arp:          arp,
		links:        links,
		ifs:          map[string]*trackState{},
		conds:        map[string]*trackState{},
		rx:           make(chan received, 16),
		wake:         make(chan struct{}, 1),
		stop:         make(chan struct{}),
		done:         make(chan struct{}),
	}
	cfg.Peers = slices.Clone(cfg.Peers)
	cfg.Groups = slices.Clone(cfg.Groups)
	for i := range cfg.Groups {
		gc := &cfg.Groups[i]
		gc.Node.Addr = cfg.Addr
		gc.Node.Addrs = slices.Clone(gc.Node.Addrs)
		gc.GARP = slices.Clone(gc.GARP)
		gc.TrackInterfaces = slices.Clone(gc.TrackInterfaces)
		gc.Track = slices.Clone(gc.Track)
		if !cfg.DontTrackInterface && !slices.ContainsFunc(gc.TrackInterfaces, func(t Track) bool { return t.Name == cfg.Interface }) {
			gc.TrackInterfaces = append(gc.TrackInterfaces, Track{Name: cfg.Interface})
		}
		n, err := NewNode(gc.Node)
		if err != nil {
			return nil, err
		}
		g := &group{vrid: gc.Node.VRID, cfg: *gc, node: n}
		g.garp = garpList(gc.Node.Addrs, gc.GARP)
		g.vips.Store(&gc.Node.Addrs)
		for _, t := range gc.TrackInterfaces {
			g.tracks = append(g.tracks, groupTrack{"interface", t.Name, t.Weight, trackOf(r.ifs, t.Name)})
		}
		for _, t := range gc.Track {
			g.tracks = append(g.tracks, groupTrack{"track", t.Name, t.Weight, trackOf(r.conds, t.Name)})
		}
		g.stats.priority.Store(uint32(gc.Node.Priority))
		g.base.Store(uint32(gc.Node.Priority))
		r.groups = append(r.groups, g)
		r.byVRID[g.vrid] = g
	}
	r.cfg = cfg
	return r, nil
}

// garpList is vips then extra, without duplicates.
func garpList(vips, extra []netip.Addr) []netip.Addr {
	var l []netip.Addr
	for _, a := range slices.Concat(vips, extra) {
		if !slices.Contains(l, a) {
			l = append(l, a)
		}
	}
	return l
}

// trackOf returns m's state for name, adding one (up) if missing.
func trackOf(m map[string]*trackState, name string) *trackState {
	st := m[name]
	if st == nil {
		st = new(trackState)
		st.up.Store(true)
		m[name] = st
	}
	return st
}

// trackedInterfaces returns the interface names some group of cfg tracks,
// the router's own included unless DontTrackInterface.
func trackedInterfaces(cfg *RouterConfig) []string {
	var names []string
	if !cfg.DontTrackInterface {
		names = append(names, cfg.Interface)
	}
	for _, g := range cfg.Groups {
		for _, t := range g.TrackInterfaces {
			if !slices.Contains(names, t.Name) {
				names = append(names, t.Name)
			}
		}
	}
	return names
}

// Start starts every group (RFC 5798 Startup event) and the goroutines
// that drive them. It fails if the Router was started or stopped before.
func (r *Router) Start() error {
	r.lifeMu.Lock()
	defer r.lifeMu.Unlock()
	if r.stopped {
		return errors.New("vrrp: start: router stopped")
	}
	if r.started {
		return errors.New("vrrp: start: already started")
	}
	r.started = true
	r.wg.Add(1)
	go r.read()
	if r.links != nil {
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			if err := r.links.watch(r.setLink); err != nil {
				r.log.Error("vrrp link watch stopped; tracked interfaces keep their last state", "err", err)
			}
		}()
	}
	go r.run()
	return nil
}

// Stop shuts every group down (RFC 5798 section 6.4.3: a master sends an
// advertisement with priority 0, so that a backup takes over after
// Skew_Time instead of Master_Down_Interval), reports the transitions to
// Initialize, closes the sockets and waits for the goroutines. A Router
// that was never started just closes its sockets. Stop may be called more
// than once, but not from the transition callback.
func (r *Router) Stop() {
	r.lifeMu.Lock()
	if r.stopped {
		r.lifeMu.Unlock()
		r.wg.Wait()
		return
	}
	r.stopped = true
	started := r.started
	close(r.stop)
	r.lifeMu.Unlock()
	if started {
		<-r.done
	} else {
		r.closeSockets()
	}
	r.wg.Wait()
}

// crash stops the Router without Shutdown: no priority-0 advertisement, no
// transition reported, as if the process died. For tests.
func (r *Router) crash() {
	r.abrupt.Store(true)
	r.Stop()
}

func (r *Router) closeSockets() {
	r.conn.Close()
	if r.arp != nil {
		r.arp.Close()
	}
	if r.links != nil {
		r.links.Close()
	}
}

// SetTracked sets the state of a condition that groups list in
// GroupConfig.Track: ok false applies its weight (or faults the group for
// weight 0) until it is set back. Names no group lists are ignored. It does
// not block; the driver acts on it at once.
func (r *Router) SetTracked(name string, ok bool) {
	if st := r.conds[name]; st != nil && st.up.Swap(ok) != ok {
		r.poke()
	}
}

// setLink records a tracked interface's link state; the link watcher calls
// it.
func (r *Router) setLink(name string, up bool) {
	if st := r.ifs[name]; st != nil && st.up.Swap(up) != up {
		r.poke()
	}
}

// SetPriority changes group vrid's configured priority to p (1..254), as a
// configuration reload does; tracking still lowers it from there. A master
// advertises the new priority at once, so a backup of higher priority now
// preempts it; a backup of higher priority than the master's preempts it
// (when preemption is on) after its master-down timer. The address owner's
// 255 cannot change, nor can another priority become 255. Safe from any
// goroutine; it does not block.
func (r *Router) SetPriority(vrid uint8, p uint8) error {
	g := r.byVRID[vrid]
	switch {
	case g == nil:
		return fmt.Errorf("vrrp %s: set priority: no group with vrid %d", r.cfg.Interface, vrid)
	case p == 0 || p == OwnerPriority:
		return fmt.Errorf("vrrp %d: set priority %d: must be 1..254", vrid, p)
	case g.cfg.Node.Priority == OwnerPriority:
		return fmt.Errorf("vrrp %d: set priority %d: the address owner keeps 255", vrid, p)
	}
	if g.base.Swap(uint32(p)) != uint32(p) {
		r.poke()
	}
	return nil
}

// groupAddrs is what SetAddrs hands the driver.
type groupAddrs struct{ vips, garp []netip.Addr }

// SetAddrs replaces group vrid's virtual addresses (Node.Addrs, the list
// its advertisements carry) and its extra gratuitous ARP addresses
// (GroupConfig.GARP) without restarting it, as when a reload adds or
// removes a VIP or a SNAT address. A master announces the addresses that
// are new at once and advertises the new list from its next
// advertisement; later rounds and later masterships use the new lists.
// While the peer still advertises the old list its adverts count as
// address mismatches, and with CheckAddrs they are rejected. Safe from any
// goroutine; it does not block.
func (r *Router) SetAddrs(vrid uint8, vips, garp []netip.Addr) error {
	g := r.byVRID[vrid]
	if g == nil {
		return fmt.Errorf("vrrp %s: set addresses: no group with vrid %d", r.cfg.Interface, vrid)
	}
	if len(vips) > 255 {
		return fmt.Errorf("vrrp %d: set addresses: %d virtual addresses, at most 255", vrid, len(vips))
	}
	for _, l := range [][]netip.Addr{vips, garp} {
		for i, a := range l {
			if !a.Is4() {
				return fmt.Errorf("vrrp %d: set addresses: [%d]: %v: not an IPv4 address", vrid, i, a)
			}
		}
	}
	g.next.Store(&groupAddrs{vips: slices.Clone(vips), garp: slices.Clone(garp)})
	r.poke()
	return nil
}

func (r *Router) poke() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// read is the reader goroutine: it checks every packet and hands the good
// ones to the driver.
func (r *Router) read() {
	defer r.wg.Done()
	buf := make([]byte, ReceiveBufferSize)
	failing := false
	for {
		n, err := r.conn.Read(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			r.readErrors.Add(1)
			if !failing {
				failing = true
				r.log.Warn("vrrp read failing", "err", err)
			}
			select {
			case <-r.stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
			continue
		}
		failing = false
		m, ok := r.receive(buf[:n])
		if !ok {
			continue
		}
		select {
		case r.rx <- m:
		case <-r.stop:
			return
		}
	}
}

// receive checks one packet as read from the socket and counts it: under a
// reject reason, or as received by its group. It does not allocate.
func (r *Router) receive(pkt []byte) (received, bool) {
	g, reason, mismatch, m := r.classify(pkt)
	switch {
	case reason == RejectNone:
		g.stats.received.Add(1)
		if mismatch {
			g.stats.addrMismatches.Add(1)
		}
		return m, true
	case g != nil:
		g.stats.rejects[reason].Add(1)
	default:
		r.rejects[reason].Add(1)
	}
	return received{}, false
}

// classify applies every receive check to pkt. A rejected packet is
// attributed to the group its VRID byte names, when there is such a byte
// and such a group (as keepalived does), and otherwise to the Router.
func (r *Router) classify(pkt []byte) (g *group, reason RejectReason, mismatch bool, m received) {
	d, reason := splitIPv4(pkt)
	if reason != RejectNone {
		return nil, reason, false, m
	}
	b := d.Payload
	if len(b) > offVRID {
		g = r.byVRID[b[offVRID]]
	}
	if reason = check(b, d.Src, d.Dst, d.TTL); reason != RejectNone {
		return g, reason, false, m
	}
	if g == nil {
		return nil, RejectUnknownVRID, false, m
	}
	if d.Src == r.addr {
		return g, RejectOwn, false, m
	}
	m = received{
		from:     d.Src,
		vrid:     b[offVRID],
		priority: b[offPriority],
		interval: time.Duration(binary.BigEndian.Uint16(b[offInterval:])&0x0fff) * centisecond,
	}
	if !sameAddrs(b, *g.vips.Load()) {
		if g.cfg.CheckAddrs && m.priority != OwnerPriority {
			return g, RejectAddrMismatch, false, received{}
		}
		mismatch = true
	}
	return g, RejectNone, mismatch, m
}

// sameAddrs reports whether the addresses in advertisement b (which passed
// check) are, as a set, want.
func sameAddrs(b []byte, want []netip.Addr) bool {
	n := int(b[offCount])
	if n != len(want) {
		return false
	}
	for i := range n {
		if !slices.Contains(want, netip.AddrFrom4([4]byte(b[offAddrs+4*i:]))) {
			return false
		}
	}
	for _, w := range want {
		found := false
		for i := range n {
			if netip.AddrFrom4([4]byte(b[offAddrs+4*i:])) == w {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// run is the driver goroutine.
func (r *Router) run() {
	defer close(r.done)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	vrids := make([]uint8, len(r.groups))
	for i, g := range r.groups {
		vrids[i] = g.vrid
	}
	r.log.Info("vrrp running", "addr", r.addr, "vrids", vrids, "unicast_peers", r.cfg.Peers)
	now := time.Now()
	r.retrack(now)
	for _, g := range r.groups {
		if !g.fault {
			r.apply(g, now, g.node.Start(now))
		}
	}
	r.running = true
	for {
		if next := r.nextDeadline(); next.IsZero() {
			timer.Stop()
		} else {
			timer.Reset(time.Until(next))
		}
		select {
		case <-r.stop:
			if !r.abrupt.Load() {
				now := time.Now()
				for _, g := range r.groups {
					r.apply(g, now, g.node.Shutdown(now))
				}
			}
			r.closeSockets()
			return
		case m := <-r.rx:
			r.handle(time.Now(), m)
		case <-r.wake:
			r.retrack(time.Now())
		case <-timer.C:
			r.tick(time.Now())
		}
	}
}

// nextDeadline is the earliest Node timer or gratuitous ARP round; zero if
// none.
func (r *Router) nextDeadline() time.Time {
	var next time.Time
	for _, g := range r.groups {
		for _, t := range [2]time.Time{g.node.NextDeadline(), g.garpNextIfAny()} {
			if !t.IsZero() && (next.IsZero() || t.Before(next)) {
				next = t
			}
		}
	}
	return next
}

func (g *group) garpNextIfAny() time.Time {
	if g.garpLeft > 0 {
		return g.garpNext
	}
	return time.Time{}
}

func (r *Router) tick(now time.Time) {
	for _, g := range r.groups {
		if dl := g.node.NextDeadline(); !dl.IsZero() && !now.Before(dl) {
			r.apply(g, now, g.node.Tick(now))
		}
		if g.garpLeft > 0 && !now.Before(g.garpNext) {
			g.garpLeft--
			g.garpNext = now.Add(r.cfg.GARPInterval)
			r.announce(g)
		}
	}
}

func (r *Router) handle(now time.Time, m received) {
	g := r.byVRID[m.vrid]
	if g == nil {
		return // classify let it through, so this cannot happen
	}
	r.apply(g, now, g.node.Advert(now, m.from, Advert{VRID: m.vrid, Priority: m.priority, MaxAdvertInterval: m.interval}))
	if g.state == Backup && m.priority > 0 {
		g.stats.master.Store(ipv4Word(m.from))
	}
}

// retrack takes in what changed outside the driver: new address lists, and
// tracked states, from which it recomputes every group's fault and
// effective priority and drives the Nodes accordingly.
func (r *Router) retrack(now time.Time) {
	for _, g := range r.groups {
		r.takeAddrs(g, true)
		fault, prio, down := g.evaluate()
		g.stats.priority.Store(uint32(prio))
		switch {
		case fault && !g.fault:
			g.fault = true
			g.stats.fault.Store(true)
			r.log.Warn("vrrp group fault", "vrid", g.vrid, "down", down)
			r.apply(g, now, g.node.Shutdown(now))
		case !fault && g.fault:
			g.fault = false
			g.stats.fault.Store(false)
			r.setPriority(g, now, prio, down)
			r.log.Info("vrrp group fault cleared", "vrid", g.vrid, "priority", prio)
			if r.running {
				r.apply(g, now, g.node.Start(now))
			}
		case !fault:
			r.setPriority(g, now, prio, down)
		}
	}
}

func (r *Router) setPriority(g *group, now time.Time, prio uint8, down []string) {
	if g.cfg.Node.Priority == OwnerPriority || prio == g.node.Priority() {
		return
	}
	r.log.Info("vrrp priority", "vrid", g.vrid, "from", g.node.Priority(), "to", prio, "down", down)
	acts, err := g.node.SetPriority(now, prio)
	if err != nil {
		panic(err) // evaluate keeps prio in 1..254 for a non-owner
	}
	r.apply(g, now, acts)
}

// evaluate returns whether a weight-0 tracked item is down, the effective
// priority, and the names of the tracked items that are down.
func (g *group) evaluate() (fault bool, prio uint8, down []string) {
	p := int(g.base.Load())
	for _, t := range g.tracks {
		if t.st.up.Load() {
			continue
		}
		down = append(down, t.kind+" "+t.name)
		if t.weight == 0 {
			fault = true
		} else {
			p -= int(t.weight)
		}
	}
	return fault, uint8(max(p, 1)), down
}

// apply carries out a Node's actions in order.
func (r *Router) apply(g *group, now time.Time, acts []Action) {
	for _, a := range acts {
		switch a := a.(type) {
		case SendAdvert:
			adv := g.node.Advertisement(a)
			if err := r.conn.Send(&adv); err != nil {
				r.sendErrors.Add(1)
				if !r.sendFailing {
					r.sendFailing = true
					r.log.Warn("vrrp send failing", "vrid", g.vrid, "err", err)
				}
				continue
			}
			if r.sendFailing {
				r.sendFailing = false
				r.log.Info("vrrp send recovered", "vrid", g.vrid)
			}
			g.stats.sent.Add(1)
		case BecomeMaster:
			r.transition(g, Master)
		case BecomeBackup:
			r.transition(g, Backup)
		case BecomeInitialize:
			r.transition(g, Initialize)
		}
	}
}

// takeAddrs takes in the address lists SetAddrs was last given, if any.
// With announce, a master announces the addresses that are new.
func (r *Router) takeAddrs(g *group, announce bool) {
	a := g.next.Swap(nil)
	if a == nil {
		return
	}
	old := g.garp
	g.node.SetAddrs(a.vips)
	g.vips.Store(&a.vips)
	g.garp = garpList(a.vips, a.garp)
	if announce && g.state == Master && r.arp != nil {
		for _, x := range g.garp {
			if !slices.Contains(old, x) {
				r.announceOne(g, x)
			}
		}
	}
}

func (r *Router) transition(g *group, to State) {
	from := g.state
	if from == to {
		return
	}
	g.state = to
	g.stats.state.Store(uint32(to))
	g.stats.transitions.Add(1)
	g.stats.lastTransition.Store(time.Now().UnixNano())
	switch to {
	case Master:
		g.stats.master.Store(ipv4Word(r.addr))
	case Initialize:
		g.stats.master.Store(0)
	}
	g.garpLeft = 0
	r.log.Info("vrrp transition", "vrid", g.vrid, "from", from, "to", to, "priority", g.node.Priority())
	if r.onTransition != nil {
		r.onTransition(g.vrid, from, to)
	}
	if to == Master {
		// onTransition may have waited for a reload that set new lists:
		// announce those, not the ones they replace.
		r.takeAddrs(g, false)
		r.announce(g)
		g.garpLeft = r.cfg.GARPRepeat
		g.garpNext = time.Now().Add(r.cfg.GARPInterval)
	}
}

// announce sends one gratuitous ARP round for g.
func (r *Router) announce(g *group) {
	if r.arp == nil {
		return
	}
	for _, a := range g.garp {
		r.announceOne(g, a)
	}
}

func (r *Router) announceOne(g *group, a netip.Addr) {
	if err := r.arp.Announce(a); err != nil {
		if r.garpErrors.Add(1) == 1 {
			r.log.Warn("vrrp gratuitous arp failing", "vrid", g.vrid, "addr", a, "err", err)
		}
	}
}

func ipv4Word(a netip.Addr) uint32 {
	b := a.As4()
	return binary.BigEndian.Uint32(b[:])
}

// Snapshot is a Router's state for `culvert show vrrp`.
type Snapshot struct {
	Interface string
	Addr      netip.Addr
	// Rejects counts packets not attributable to a group: too short to
	// carry a VRID, malformed with a VRID this Router does not run, or
	// well-formed for such a VRID (RejectUnknownVRID).
	Rejects    [NumRejectReasons]uint64
	SendErrors uint64 // advertisements the socket refused
	GARPErrors uint64 // gratuitous ARP frames the socket refused
	ReadErrors uint64 // socket read errors other than Close
	Groups     []GroupSnapshot
}

// GroupSnapshot is one group's state and counters.
type GroupSnapshot struct {
	VRID  uint8
	State State
	// Fault is set while a weight-0 tracked item is down; the group is then
	// held in Initialize.
	Fault bool
	// Priority is the configured priority, EffectivePriority the one in use
	// after tracking.
	Priority          uint8
	EffectivePriority uint8
	// Master is the master's primary address as last seen: this router's
	// own in Master, the last advertiser's in Backup, zero in Initialize
	// and in Backup before any advertisement.
	Master          netip.Addr
	AdvertsSent     uint64
	AdvertsReceived uint64 // passed every check and reached the Node
	// Rejects counts packets naming this group's VRID that failed a check.
	Rejects [NumRejectReasons]uint64
	// AddrMismatches counts accepted advertisements whose address list
	// differs from Node.Addrs (see GroupConfig.CheckAddrs).
	AddrMismatches uint64
	Transitions    uint64
	LastTransition time.Time // zero if none yet
	// Down names the tracked items now down: "interface eth1", "track svc".
	Down []string
}

// Snapshot returns the current state and counters. Safe from any
// goroutine; the fields are read one by one, so a snapshot taken during a
// transition may mix before and after.
func (r *Router) Snapshot() Snapshot {
	s := Snapshot{
		Interface:  r.cfg.Interface,
		Addr:       r.addr,
		SendErrors: r.sendErrors.Load(),
		GARPErrors: r.garpErrors.Load(),
		ReadErrors: r.readErrors.Load(),
	}
	for i := range s.Rejects {
		s.Rejects[i] = r.rejects[i].Load()
	}
	for _, g := range r.groups {
		gs := GroupSnapshot{
			VRID:              g.vrid,
			State:             State(g.stats.state.Load()),
			Fault:             g.stats.fault.Load(),
			Priority:          uint8(g.base.Load()),
			EffectivePriority: uint8(g.stats.priority.Load()),
			AdvertsSent:       g.stats.sent.Load(),
			AdvertsReceived:   g.stats.received.Load(),
			AddrMismatches:    g.stats.addrMismatches.Load(),
			Transitions:       g.stats.transitions.Load(),
		}
		if m := g.stats.master.Load(); m != 0 {
			var b [4]byte
			binary.BigEndian.PutUint32(b[:], m)
			gs.Master = netip.AddrFrom4(b)
		}
		if ns := g.stats.lastTransition.Load(); ns != 0 {
			gs.LastTransition = time.Unix(0, ns)
		}
		for i := range gs.Rejects {
			gs.Rejects[i] = g.stats.rejects[i].Load()
		}
		for _, t := range g.tracks {
			if !t.st.up.Load() {
				gs.Down = append(gs.Down, t.kind+" "+t.name)
			}
		}
		s.Groups = append(s.Groups, gs)
	}
	return s
}
