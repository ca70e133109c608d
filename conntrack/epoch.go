package conntrack

import (
	"sync"
	"sync/atomic"
)

// epochs is the reclamation clock and the registry of Readers.
type epochs struct {
	_      [cacheLine]byte
	global atomic.Uint64 // starts at 1; advanced by Sweep once per call; read by Begin
	_      [cacheLine - 8]byte

	mu      sync.Mutex                // serializes registry updates
	readers atomic.Pointer[[]*Reader] // copy on write; read by Sweep
}

func newEpochs() *epochs {
	e := &epochs{}
	e.global.Store(1)
	e.readers.Store(new([]*Reader))
	return e
}

// minActive returns the smallest epoch at which a reader now inside
// Begin/End began, or ^0 when all readers are quiescent.
func (e *epochs) minActive() uint64 {
	m := ^uint64(0)
	for _, r := range *e.readers.Load() {
		if v := r.epoch.Load(); v != 0 && v < m {
			m = v
		}
	}
	return m
}

// Reader is a worker's registration with the table's memory reclamation.
// Each goroutine that calls Lookup, LookupBatch, Insert or Track owns one
// Reader and brackets each batch of calls with Begin and End; entries it
// obtained inside the bracket stay valid (are not reused for another
// flow) until End. Outside the bracket the reader is quiescent and holds
// nothing back, so a worker sleeping in poll delays no one.
//
// A Reader is used by one goroutine at a time; Begin and End do not nest.
// Begin costs one shared load and one store to the reader's own cache
// line; End one store.
type Reader struct {
	_     [cacheLine]byte
	epoch atomic.Uint64 // 0: quiescent; else the global epoch at Begin. Written by the owner, read by Sweep.
	ep    *epochs
	_     [cacheLine - 16]byte
}

// NewReader registers a new Reader (control path: it allocates and takes
// a mutex). Workers create theirs once, before the dataplane starts.
func (t *Table[K]) NewReader() *Reader {
	r := &Reader{ep: t.ep}
	e := t.ep
	e.mu.Lock()
	old := *e.readers.Load()
	n := make([]*Reader, len(old), len(old)+1)
	copy(n, old)
	n = append(n, r)
	e.readers.Store(&n)
	e.mu.Unlock()
	return r
}

// Begin marks the start of a batch: entries found from now on are not
// reused before End.
func (r *Reader) Begin() { r.epoch.Store(r.ep.global.Load()) }

// End marks the end of a batch; entries obtained since Begin must no
// longer be used.
func (r *Reader) End() { r.epoch.Store(0) }

// Close unregisters the reader. It must be quiescent and is not used again.
func (r *Reader) Close() {
	r.epoch.Store(0)
	e := r.ep
	e.mu.Lock()
	old := *e.readers.Load()
	n := make([]*Reader, 0, len(old))
	for _, x := range old {
		if x != r {
			n = append(n, x)
		}
	}
	e.readers.Store(&n)
	e.mu.Unlock()
}

// ctrlReader is the Reader of control-path calls (Import) that have no
// worker Reader; mu serializes them.
type ctrlReader struct {
	mu sync.Mutex
	r  *Reader
}
