package nic

import "fmt"

// Mem is an in-memory Queue for tests and benchmarks. The test side injects
// frames with Inject and collects what the worker transmitted or passed with
// TakeTX and TakePassed. Mem is not safe for concurrent use: the test and
// the worker take turns.
type Mem struct {
	umem     []byte
	chunk    int
	headroom int
	free     []uint64 // chunk base addresses not in use
	rx       []Desc   // injected, not yet received
	tx       []Desc   // transmitted, not yet taken
	passed   []Desc   // passed, not yet taken
	txLimit  int      // Transmit takes at most this many per call; 0 means no limit
	alloc    int      // Alloc hands out at most this many per call; -1 means no limit

	// Counters of what crossed the queue, for assertions.
	Received, Transmitted, Passed, Released, Allocated uint64
}

// NewMem returns a Mem with the given number of chunks of chunkSize bytes
// (a power of two) and headroom bytes kept free in front of each frame.
func NewMem(chunks, chunkSize, headroom int) (*Mem, error) {
	if chunkSize < 256 || chunkSize&(chunkSize-1) != 0 {
		return nil, fmt.Errorf("nic: chunk size %d is not a power of two >= 256", chunkSize)
	}
	if headroom < 0 || headroom > chunkSize-128 {
		return nil, fmt.Errorf("nic: headroom %d does not fit chunk size %d", headroom, chunkSize)
	}
	if chunks < 1 {
		return nil, fmt.Errorf("nic: need at least one chunk")
	}
	m := &Mem{umem: make([]byte, chunks*chunkSize), chunk: chunkSize, headroom: headroom, alloc: -1}
	m.free = make([]uint64, 0, chunks)
	for i := chunks - 1; i >= 0; i-- {
		m.free = append(m.free, uint64(i*chunkSize))
	}
	m.rx = make([]Desc, 0, chunks)
	m.tx = make([]Desc, 0, chunks)
	m.passed = make([]Desc, 0, chunks)
	return m, nil
}

// UMEM implements Queue.
func (m *Mem) UMEM() []byte { return m.umem }

// ChunkSize implements Queue.
func (m *Mem) ChunkSize() int { return m.chunk }

// Headroom implements Queue.
func (m *Mem) Headroom() int { return m.headroom }

// SetTXLimit makes Transmit accept at most n frames per call, to exercise
// a full transmit ring. Zero removes the limit.
func (m *Mem) SetTXLimit(n int) { m.txLimit = n }

// SetAllocLimit makes Alloc hand out at most n chunks per call, to
// exercise a queue that keeps its chunks for receiving; n < 0 removes the
// limit, n = 0 makes every Alloc return 0.
func (m *Mem) SetAllocLimit(n int) { m.alloc = n }

// Inject copies frame into a free chunk and queues it for Receive. It
// reports false when no chunk is free or the frame does not fit.
func (m *Mem) Inject(frame []byte) bool {
	if len(m.free) == 0 || len(frame) > m.chunk-m.headroom {
		return false
	}
	base := m.free[len(m.free)-1]
	m.free = m.free[:len(m.free)-1]
	addr := base + uint64(m.headroom)
	copy(m.umem[addr:], frame)
	m.rx = append(m.rx, Desc{Addr: addr, Len: uint32(len(frame))})
	return true
}

// Requeue puts received frames back at the head of the receive queue, for
// a test or generator that edits frames in place between Inject and the
// worker's Receive.
func (m *Mem) Requeue(d []Desc) {
	m.rx = append(m.rx, d...)
	copy(m.rx[len(d):], m.rx[:len(m.rx)-len(d)])
	copy(m.rx, d)
	m.Received -= uint64(len(d))
}

// Receive implements Queue.
func (m *Mem) Receive(d []Desc) int {
	n := copy(d, m.rx)
	rest := copy(m.rx, m.rx[n:])
	m.rx = m.rx[:rest]
	m.Received += uint64(n)
	return n
}

// Alloc implements Queue: it pops up to len(d) chunks off the free stack
// (the same stack Inject takes from) and keeps none back.
func (m *Mem) Alloc(d []Desc) int {
	n := min(len(d), len(m.free))
	if m.alloc >= 0 {
		n = min(n, m.alloc)
	}
	top := len(m.free)
	for i := range n {
		d[i] = Desc{Addr: m.free[top-1-i] + uint64(m.headroom)}
	}
	m.free = m.free[:top-n]
	m.Allocated += uint64(n)
	return n
}

// Transmit implements Queue.
func (m *Mem) Transmit(d []Desc) int {
	n := len(d)
	if m.txLimit > 0 && n > m.txLimit {
		n = m.txLimit
	}
	for _, x := range d[:n] {
		m.check(x)
	}
	m.tx = append(m.tx, d[:n]...)
	m.Transmitted += uint64(n)
	return n
}

// Pass implements Queue.
func (m *Mem) Pass(d []Desc) {
	for _, x := range d {
		m.check(x)
	}
	m.passed = append(m.passed, d...)
	m.Passed += uint64(len(d))
}

// Release implements Queue.
func (m *Mem) Release(d []Desc) {
	for _, x := range d {
		m.check(x)
		m.recycle(x)
	}
	m.Released += uint64(len(d))
}

// check panics when a worker hands back a descriptor that escapes its chunk:
// that is a bug in the worker, not bad input.
func (m *Mem) check(d Desc) {
	base := d.Addr &^ uint64(m.chunk-1)
	if d.Addr+uint64(d.Len) > base+uint64(m.chunk) || d.Addr+uint64(d.Len) > uint64(len(m.umem)) {
		panic(fmt.Sprintf("nic: descriptor %+v escapes its chunk", d))
	}
}

func (m *Mem) recycle(d Desc) {
	m.free = append(m.free, d.Addr&^uint64(m.chunk-1))
}

// TakeTX returns copies of the transmitted frames in order and recycles
// their chunks.
func (m *Mem) TakeTX() [][]byte { return m.take(&m.tx) }

// TakePassed returns copies of the passed frames in order and recycles their
// chunks.
func (m *Mem) TakePassed() [][]byte { return m.take(&m.passed) }

// DiscardTX recycles transmitted frames without copying them (benchmarks).
func (m *Mem) DiscardTX() {
	for _, d := range m.tx {
		m.recycle(d)
	}
	m.tx = m.tx[:0]
}

// Free returns the number of unused chunks.
func (m *Mem) Free() int { return len(m.free) }

func (m *Mem) take(q *[]Desc) [][]byte {
	out := make([][]byte, 0, len(*q))
	for _, d := range *q {
		out = append(out, append([]byte(nil), m.umem[d.Addr:d.Addr+uint64(d.Len)]...))
		m.recycle(d)
	}
	*q = (*q)[:0]
	return out
}
