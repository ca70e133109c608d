package sched

import "fmt"

// Scheduler picks a backend for a new flow of one virtual service. h is the
// flow's FlowHash4 or FlowHash6; cursor is the calling worker's own cursor
// for this service (start it at 0; never share it between goroutines).
// Maglev uses only h, WRR and LeastConn only the cursor. Implementations are
// immutable and safe for concurrent Pick with distinct cursors; Pick
// allocates nothing, takes no lock and makes no syscall. ok=false means the
// service has no backend with weight.
type Scheduler interface {
	Pick(h uint64, cursor *uint32) (id uint32, ok bool)
}

// Kind names a scheduling algorithm. The zero Kind is KindMaglev, the
// default.
type Kind uint8

const (
	KindMaglev    Kind = iota // Maglev consistent hashing of the flow hash
	KindWRR                   // weighted round robin
	KindLeastConn             // weighted least connections
)

var kindNames = [...]string{KindMaglev: "maglev", KindWRR: "wrr", KindLeastConn: "lc"}

func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return fmt.Sprintf("Kind(%d)", uint8(k))
}

// ParseKind parses "maglev", "wrr" or "lc" (exactly, lower case).
func ParseKind(s string) (Kind, error) {
	for k, n := range kindNames {
		if s == n {
			return Kind(k), nil
		}
	}
	return 0, fmt.Errorf("scheduler %q: %w (want maglev, wrr or lc)", s, ErrUnknownKind)
}

// MarshalText writes the name ParseKind reads; an unknown Kind is an error.
func (k Kind) MarshalText() ([]byte, error) {
	if int(k) >= len(kindNames) {
		return nil, fmt.Errorf("scheduler %d: %w", uint8(k), ErrUnknownKind)
	}
	return []byte(kindNames[k]), nil
}

// UnmarshalText is ParseKind for encoding packages.
func (k *Kind) UnmarshalText(text []byte) error {
	v, err := ParseKind(string(text))
	if err != nil {
		return err
	}
	*k = v
	return nil
}

// New builds the scheduler of the given kind for pool. The pool is checked
// the same way for every kind (see NewMaglev): invalid addresses and
// duplicate (address, port) or ID are errors. key and size matter only to
// Maglev (size 0 means DefaultMaglevSize); active only to LeastConn, which
// needs it non-nil and covering every ID with weight.
func New(kind Kind, key HashKey, size int, pool []Backend, active *Active) (Scheduler, error) {
	switch kind {
	case KindMaglev:
		m, err := NewMaglev(key, size, pool)
		if err != nil {
			return nil, err
		}
		return (*maglevScheduler)(m), nil
	case KindWRR:
		if err := validatePool(pool); err != nil {
			return nil, err
		}
		return (*wrrScheduler)(NewWRR(pool)), nil
	case KindLeastConn:
		if err := validatePool(pool); err != nil {
			return nil, err
		}
		if active == nil {
			return nil, fmt.Errorf("lc: %w", ErrNoActive)
		}
		for i, b := range pool {
			if b.Weight > 0 && uint64(b.ID) >= uint64(active.Cap()) {
				return nil, fmt.Errorf("pool[%d]: %w: id %d, capacity %d", i, ErrIDOutOfRange, b.ID, active.Cap())
			}
		}
		return (*leastConnScheduler)(NewLeastConn(pool, active)), nil
	}
	return nil, fmt.Errorf("scheduler %v: %w", kind, ErrUnknownKind)
}

// The concrete types keep their own Pick signatures; these adapters, which
// share their memory layout, make them Schedulers without an allocation or
// an extra indirection.
type (
	maglevScheduler    Maglev
	wrrScheduler       WRR
	leastConnScheduler LeastConn
)

func (s *maglevScheduler) Pick(h uint64, _ *uint32) (uint32, bool) { return (*Maglev)(s).Pick(h) }
func (s *wrrScheduler) Pick(_ uint64, c *uint32) (uint32, bool)    { return (*WRR)(s).Pick(c) }
func (s *leastConnScheduler) Pick(_ uint64, c *uint32) (uint32, bool) {
	return (*LeastConn)(s).Pick(c)
}

// Scheduler returns m as a Scheduler (ignoring the cursor).
func (m *Maglev) Scheduler() Scheduler { return (*maglevScheduler)(m) }

// Scheduler returns w as a Scheduler (ignoring the hash).
func (w *WRR) Scheduler() Scheduler { return (*wrrScheduler)(w) }

// Scheduler returns l as a Scheduler (ignoring the hash).
func (l *LeastConn) Scheduler() Scheduler { return (*leastConnScheduler)(l) }
