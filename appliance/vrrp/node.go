package vrrp

import (
	"errors"
	"fmt"
	"net/netip"
	"time"
)

// State is the state of a virtual router (RFC 5798 section 6.4).
type State uint8

// States of a virtual router. The zero value is Initialize.
const (
	Initialize State = iota
	Backup
	Master
)

// String returns the RFC name of s.
func (s State) String() string {
	switch s {
	case Initialize:
		return "Initialize"
	case Backup:
		return "Backup"
	case Master:
		return "Master"
	}
	return fmt.Sprintf("State(%d)", uint8(s))
}

// OwnerPriority is the priority of the router that owns the virtual
// addresses; it becomes master at once and always preempts.
const OwnerPriority = 255

// Config configures one virtual router. The zero value is not valid; start
// from Default.
type Config struct {
	// VRID is the virtual router identifier, 1..255.
	VRID uint8
	// Priority is 1..255; 255 means this router owns the addresses.
	Priority uint8
	// AdvertInterval is how often the master advertises: a multiple of 10ms
	// from 10ms to 40.95s. Zero means 1s.
	AdvertInterval time.Duration
	// Preempt lets a higher-priority backup take over from a lower-priority
	// master. Default sets it; the owner always preempts.
	Preempt bool
	// PreemptDelay holds off preemption: while a backup has seen a
	// lower-priority master for less than PreemptDelay it treats that
	// master's advertisements as if preemption were off. Takeover therefore
	// happens one Master_Down_Interval after the last advertisement received
	// within the delay. Not part of RFC 5798 (keepalived's preempt_delay).
	PreemptDelay time.Duration
	// Addr is this router's primary IPv4 address, the source of its
	// advertisements; it breaks ties between equal priorities (higher wins).
	Addr netip.Addr
	// Addrs are the virtual addresses carried in advertisements.
	Addrs []netip.Addr
}

// Default returns a Config with priority 100, a 1s interval and preemption
// on; the caller sets VRID, Addr and Addrs.
func Default() Config {
	return Config{Priority: 100, AdvertInterval: time.Second, Preempt: true}
}

// Validate reports every problem in c, joined with errors.Join.
func (c *Config) Validate() error {
	var errs []error
	if c.VRID == 0 {
		errs = append(errs, errors.New("vrid: must be 1..255"))
	}
	if c.Priority == 0 {
		errs = append(errs, errors.New("priority: must be 1..255"))
	}
	if c.AdvertInterval != 0 {
		if _, ok := centiseconds(c.AdvertInterval); !ok {
			errs = append(errs, fmt.Errorf("advert_interval: %v: must be a multiple of 10ms in [10ms, 40.95s]", c.AdvertInterval))
		}
	}
	if c.PreemptDelay < 0 {
		errs = append(errs, fmt.Errorf("preempt_delay: %v: negative", c.PreemptDelay))
	}
	if !c.Addr.Is4() {
		errs = append(errs, fmt.Errorf("addr: %v: not an IPv4 address", c.Addr))
	}
	if len(c.Addrs) > 255 {
		errs = append(errs, fmt.Errorf("addrs: %d addresses, at most 255", len(c.Addrs)))
	}
	for i, a := range c.Addrs {
		if !a.Is4() {
			errs = append(errs, fmt.Errorf("addrs[%d]: %v: not an IPv4 address", i, a))
		}
	}
	return errors.Join(errs...)
}

// Action is something the caller must do after driving a Node: one of
// SendAdvert, BecomeMaster, BecomeBackup or BecomeInitialize. Actions are
// comparable values.
type Action interface{ action() }

// SendAdvert asks the caller to send an advertisement with this priority;
// Node.Advertisement builds it.
type SendAdvert struct{ Priority uint8 }

// BecomeMaster asks the caller to claim the virtual addresses and send
// gratuitous ARP for each.
type BecomeMaster struct{}

// BecomeBackup asks the caller to release the virtual addresses (if held)
// and listen for advertisements.
type BecomeBackup struct{}

// BecomeInitialize asks the caller to release the virtual addresses (if
// held) and stop; it follows Shutdown.
type BecomeInitialize struct{}

func (SendAdvert) action()       {}
func (BecomeMaster) action()     {}
func (BecomeBackup) action()     {}
func (BecomeInitialize) action() {}

// SkewTime is Skew_Time of RFC 5798 section 6.1:
// ((256 - priority) * Master_Adver_Interval) / 256, computed in whole
// centiseconds as the RFC states it (so it truncates to 10ms).
func SkewTime(priority uint8, masterAdverInterval time.Duration) time.Duration {
	cs := int64(masterAdverInterval / centisecond)
	return time.Duration((256-int64(priority))*cs/256) * centisecond
}

// MasterDownInterval is Master_Down_Interval of RFC 5798 section 6.1:
// 3 * Master_Adver_Interval + Skew_Time.
func MasterDownInterval(priority uint8, masterAdverInterval time.Duration) time.Duration {
	return 3*masterAdverInterval + SkewTime(priority, masterAdverInterval)
}

// Node is the state machine of one virtual router (RFC 5798 section 6.4).
// It runs no goroutines and reads no clock: the caller passes the time to
// every method, calls Tick at or after NextDeadline, feeds received
// advertisements to Advert and carries out the returned Actions in order.
//
// A Node is not safe for concurrent use; one goroutine drives it. The zero
// value is not usable; build one with NewNode.
type Node struct {
	cfg      Config
	priority uint8 // current priority; differs from cfg.Priority after SetPriority
	state    State

	masterAdverInterval time.Duration // learned from the master in Backup
	masterDown          time.Time     // Master_Down_Timer deadline in Backup
	adverTimer          time.Time     // Adver_Timer deadline in Master
	lowerSince          time.Time     // Backup: first lower-priority advert seen while preempt-delayed; zero if none
}

// NewNode validates cfg and returns a Node in Initialize. It keeps cfg.Addrs
// without copying.
func NewNode(cfg Config) (*Node, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("vrrp %d: %w", cfg.VRID, err)
	}
	if cfg.AdvertInterval == 0 {
		cfg.AdvertInterval = time.Second
	}
	return &Node{cfg: cfg, priority: cfg.Priority}, nil
}

// State returns the current state.
func (n *Node) State() State { return n.state }

// SetAddrs replaces the virtual addresses the advertisements carry (at
// most 255, IPv4; the caller checks). It keeps addrs without copying.
func (n *Node) SetAddrs(addrs []netip.Addr) { n.cfg.Addrs = addrs }

// Priority returns the current priority.
func (n *Node) Priority() uint8 { return n.priority }

// MasterAdverInterval returns Master_Adver_Interval: the interval learned
// from the master while in Backup, the configured interval otherwise.
func (n *Node) MasterAdverInterval() time.Duration { return n.masterAdverInterval }

// NextDeadline returns when Tick must next be called: the Master_Down_Timer
// in Backup, the Adver_Timer in Master, and the zero time in Initialize.
func (n *Node) NextDeadline() time.Time {
	switch n.state {
	case Backup:
		return n.masterDown
	case Master:
		return n.adverTimer
	}
	return time.Time{}
}

// Advertisement builds the advertisement a SendAdvert action asks for. Its
// Addrs is the configured slice, shared, so it does not allocate.
func (n *Node) Advertisement(s SendAdvert) Advert {
	return Advert{VRID: n.cfg.VRID, Priority: s.Priority, MaxAdvertInterval: n.cfg.AdvertInterval, Addrs: n.cfg.Addrs}
}

// Start handles the Startup event (RFC 5798 section 6.4.1). It does nothing
// unless the Node is in Initialize.
func (n *Node) Start(now time.Time) []Action {
	if n.state != Initialize {
		return nil
	}
	n.masterAdverInterval = n.cfg.AdvertInterval
	if n.priority == OwnerPriority {
		return n.becomeMaster(now)
	}
	n.becomeBackup(now, n.cfg.AdvertInterval)
	return []Action{BecomeBackup{}}
}

// Shutdown handles the Shutdown event: a master sends an advertisement with
// priority 0 so that a backup takes over after Skew_Time. Afterwards the
// Node is in Initialize and Start may be called again.
func (n *Node) Shutdown(now time.Time) []Action {
	var acts []Action
	switch n.state {
	case Initialize:
		return nil
	case Master:
		acts = append(acts, SendAdvert{Priority: 0})
	}
	n.state = Initialize
	n.masterDown, n.adverTimer, n.lowerSince = time.Time{}, time.Time{}, time.Time{}
	return append(acts, BecomeInitialize{})
}

// Tick fires the timers due at now. It returns nil when none is due and then
// does not allocate.
func (n *Node) Tick(now time.Time) []Action {
	switch n.state {
	case Backup:
		if !now.Before(n.masterDown) {
			return n.becomeMaster(now)
		}
	case Master:
		if !now.Before(n.adverTimer) {
			n.adverTimer = now.Add(n.cfg.AdvertInterval)
			return []Action{SendAdvert{Priority: n.priority}}
		}
	}
	return nil
}

// Advert handles an advertisement received at now from the router whose
// primary address is from; a has passed Parse. Advertisements for another
// VRID or from this router's own address are ignored.
func (n *Node) Advert(now time.Time, from netip.Addr, a Advert) []Action {
	if a.VRID != n.cfg.VRID || from == n.cfg.Addr {
		return nil
	}
	switch n.state {
	case Backup:
		switch {
		case a.Priority == 0:
			n.masterDown = now.Add(SkewTime(n.priority, n.masterAdverInterval))
			n.lowerSince = time.Time{}
		case a.Priority >= n.priority:
			n.lowerSince = time.Time{}
			n.resetMasterDown(now, a.MaxAdvertInterval)
		case !n.preempts():
			n.resetMasterDown(now, a.MaxAdvertInterval)
		case n.cfg.PreemptDelay > 0:
			if n.lowerSince.IsZero() {
				n.lowerSince = now
			}
			if now.Sub(n.lowerSince) < n.cfg.PreemptDelay {
				n.resetMasterDown(now, a.MaxAdvertInterval)
			}
			// Else discard: the Master_Down_Timer runs out and we preempt.
		}
		// Else preempt: discard, the Master_Down_Timer runs out.
	case Master:
		switch {
		case a.Priority == 0:
			n.adverTimer = now.Add(n.cfg.AdvertInterval)
			return []Action{SendAdvert{Priority: n.priority}}
		case a.Priority > n.priority || a.Priority == n.priority && from.Compare(n.cfg.Addr) > 0:
			n.adverTimer = time.Time{}
			n.becomeBackup(now, a.MaxAdvertInterval)
			return []Action{BecomeBackup{}}
		}
		// Else discard; our next advertisement tells the sender.
	}
	return nil
}

// SetPriority changes the priority, as interface or health tracking does, to
// p in 1..254. A master advertises the new priority at once so that a
// higher-priority backup can preempt it; a backup recomputes Skew_Time from
// the next advertisement on. The owner's priority (255) cannot be changed
// and no other router can become the owner.
func (n *Node) SetPriority(now time.Time, p uint8) ([]Action, error) {
	if p == 0 || p == OwnerPriority {
		return nil, fmt.Errorf("vrrp %d: set priority %d: must be 1..254", n.cfg.VRID, p)
	}
	if n.cfg.Priority == OwnerPriority {
		return nil, fmt.Errorf("vrrp %d: set priority %d: the address owner keeps 255", n.cfg.VRID, p)
	}
	if p == n.priority {
		return nil, nil
	}
	n.priority = p
	if n.state == Master {
		n.adverTimer = now.Add(n.cfg.AdvertInterval)
		return []Action{SendAdvert{Priority: p}}, nil
	}
	return nil, nil
}

func (n *Node) preempts() bool { return n.cfg.Preempt || n.priority == OwnerPriority }

func (n *Node) resetMasterDown(now time.Time, masterAdverInterval time.Duration) {
	n.masterAdverInterval = masterAdverInterval
	n.masterDown = now.Add(MasterDownInterval(n.priority, masterAdverInterval))
}

func (n *Node) becomeBackup(now time.Time, masterAdverInterval time.Duration) {
	n.state = Backup
	n.lowerSince = time.Time{}
	n.resetMasterDown(now, masterAdverInterval)
}

func (n *Node) becomeMaster(now time.Time) []Action {
	n.state = Master
	n.masterDown, n.lowerSince = time.Time{}, time.Time{}
	n.masterAdverInterval = n.cfg.AdvertInterval
	n.adverTimer = now.Add(n.cfg.AdvertInterval)
	return []Action{SendAdvert{Priority: n.priority}, BecomeMaster{}}
}
