package sched

import (
	"errors"
	"fmt"
	"math"
	"math/bits"
)

// DefaultMaglevSize is the default Maglev table size: a prime, about 650
// slots per backend at 100 backends (the paper asks for M >> N; at 1000
// backends it is still 65 slots each, see the remap figures in doc.go).
const DefaultMaglevSize = 65537

// MaxMaglevSize bounds the table size (4 bytes per slot: 64 MiB).
const MaxMaglevSize = 1 << 24

// Maglev is an immutable Maglev lookup table (Eisenbud et al., "Maglev: A Fast
// and Reliable Software Network Load Balancer", NSDI 2016) built from a pool.
// Safe for concurrent Pick by any number of goroutines; build a new one to
// change the pool. The zero Maglev is an empty table whose Pick returns
// ok=false and whose Size is 0.
//
// The table depends only on the HashKey, the size and the set of (address,
// port, weight, ID) in the pool, never on pool order, a start-up seed, map
// order, the Go version or the CPU; see the determinism contract in doc.go.
type Maglev struct {
	table   []uint32 // backend ID per slot; empty when no backend has weight
	size    int
	members []member // canonical order, weight > 0
}

// NewMaglev builds the table of the given prime size (0 means
// DefaultMaglevSize) for pool. Pool order does not matter: backends are put
// in canonical order (the 16-byte address, IPv4 as ::ffff:a.b.c.d, then the
// port). Two backends with the same (address, port) or the same ID are an
// error, as is an invalid address. Backends of weight 0 are left out (the
// table is exactly the one built without them); an empty or all-drained pool
// builds a table whose Pick returns ok=false. Errors wrap ErrSize,
// ErrDuplicate or ErrInvalidAddr and name the offending pool index.
//
// Each backend's permutation of the slots comes from the keyed hash of its
// canonical name (see permutation). Slots are then handed out in turns: in
// round r = 1, 2, ... every backend i whose weight wᵢ has earned a turn
// (its k-th turn falls in round ⌈k·W/wᵢ⌉, W the largest weight: each round it
// earns wᵢ credit and takes a turn when the credit reaches W) claims the next
// free slot in its permutation, backends taking their turns in canonical
// order. So backend i owns M·wᵢ/Σw slots to within 1 + N·wᵢ/Σw (two slots
// when weights are equal), and with equal weights this is exactly the
// paper's population loop.
//
// Cost: O(N) hashing, about M·ln M probes of the table in total (the
// paper's bound), and ordering the turns: a credit loop over about
// M·W/Σw rounds of N backends, or a heap in O(M·log N) when that would be
// more. BenchmarkNewMaglev at M = 65537 on the 2-core dev VM: 1.3 ms for 10
// equal backends, 1.7 ms for 100, 2.0 ms for 1000, 2.7 ms for 1000 with
// weights 1..100, 1.0 ms for 1000 with one weight 10⁶; 20 ms for 1000 at
// M = 655373. It allocates the 4·M-byte table, an M/8-byte bitmap and O(N)
// scratch.
func NewMaglev(key HashKey, size int, pool []Backend) (*Maglev, error) {
	if size == 0 {
		size = DefaultMaglevSize
	}
	var errs []error
	if err := CheckMaglevSize(size); err != nil {
		errs = append(errs, err)
	}
	if err := validatePool(pool); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	ms := canonical(pool)
	if len(ms) > size {
		return nil, fmt.Errorf("maglev size %d: %w: fewer slots than the %d backends with weight", size, ErrSize, len(ms))
	}
	m := &Maglev{size: size, members: ms}
	if len(ms) > 0 {
		m.table = populate(&key, size, ms)
	}
	return m, nil
}

// Pick returns the backend ID for a flow of hash h (FlowHash4 or FlowHash6),
// or ok=false when the table has no backend. The slot is ⌊h·M / 2⁶⁴⌋ (the
// high word of the 128-bit product), which uses the hash's high bits and
// needs no division. Pick does not allocate, lock or write.
func (m *Maglev) Pick(h uint64) (id uint32, ok bool) {
	t := m.table
	if len(t) == 0 {
		return 0, false
	}
	i, _ := bits.Mul64(h, uint64(len(t)))
	return t[i], true
}

// Size returns M, the number of slots (even when the pool is empty).
func (m *Maglev) Size() int { return m.size }

// Slots returns a copy of the table: the backend ID of every slot, nil when
// no backend has weight. For tests and diagnostics; it allocates 4·M bytes.
func (m *Maglev) Slots() []uint32 {
	if len(m.table) == 0 {
		return nil
	}
	return append([]uint32(nil), m.table...)
}

// Backends returns the backends in the table (weight > 0) in canonical order,
// with their Addr as IPv4 or IPv6 without zone. For diagnostics.
func (m *Maglev) Backends() []Backend {
	out := make([]Backend, len(m.members))
	for i, mb := range m.members {
		out[i] = mb.backend()
	}
	return out
}

// permutation returns backend n's offset and skip for a table of prime size
// M: offset = h₁ mod M, skip = h₂ mod (M−1) + 1, where h₁ and h₂ are
// SipHash-2-4 under key of the 18-byte canonical name followed by one tag
// byte, 'o' for h₁ and 's' for h₂. Slot j of the permutation is
// (offset + j·skip) mod M; M prime makes it visit every slot once.
func permutation(key *HashKey, n *name, size int) (offset, skip uint32) {
	var msg [nameLen + 1]byte
	copy(msg[:], n[:])
	msg[nameLen] = 'o'
	h1 := sipHash24(key, msg[:])
	msg[nameLen] = 's'
	h2 := sipHash24(key, msg[:])
	return uint32(h1 % uint64(size)), uint32(h2%uint64(size-1)) + 1
}

// builder is the scratch state of one table build.
type builder struct {
	table []uint32 // the table being filled
	taken []uint64 // bitmap of filled slots (8 KiB at M = 65537: stays in L1)
	pos   []uint32 // next candidate slot in backend i's permutation
	skip  []uint32 // backend i's stride
	ids   []uint32 // backend i's ID
	m     uint32   // table size
}

// claim gives backend i the next free slot of its permutation.
func (b *builder) claim(i int) {
	p, s := b.pos[i], b.skip[i]
	for b.taken[p/64]&(1<<(p%64)) != 0 {
		if p += s; p >= b.m {
			p -= b.m
		}
	}
	b.taken[p/64] |= 1 << (p % 64)
	b.table[p] = b.ids[i]
	if p += s; p >= b.m {
		p -= b.m
	}
	b.pos[i] = p
}

// populate fills a table of the given size from ms (canonical order, every
// weight > 0, len(ms) <= size), handing out turns in the order defined on
// NewMaglev: by round, then canonical index, backend i taking its k-th turn
// in round ⌈k·W/wᵢ⌉.
//
// There are about R = M·W/Σw rounds. When R·N is small (equal weights,
// where R ≈ M/N, or moderately uneven ones) the literal credit loop is
// cheapest; otherwise, as for {1000000, 1, 1, ...} where it would walk M
// rounds of N backends, the turns come off a heap in O(M·log N)
// (BenchmarkNewMaglev/.../skewed). Both give the same order; the tests check
// each against a plain reimplementation.
func populate(key *HashKey, size int, ms []member) []uint32 {
	b, maxW, sum := newBuilder(key, size, ms)
	// Credit-loop steps ≈ R·N; heap steps ≈ M·log₂N, each several times
	// dearer than a credit step. Σw < 2⁵⁶ and M·W < 2⁵⁶: no overflow.
	n := uint64(len(ms))
	rounds := uint64(size)*maxW/sum + 1
	if rounds*n <= uint64(size)*uint64(4+bits.Len64(n)) {
		b.turnsByCredit(ms, maxW)
	} else {
		b.turnsByHeap(ms, maxW)
	}
	return b.table
}

// newBuilder prepares the permutations and returns the largest and the
// total weight.
func newBuilder(key *HashKey, size int, ms []member) (b *builder, maxW, sum uint64) {
	n := len(ms)
	b = &builder{
		table: make([]uint32, size),
		taken: make([]uint64, (size+63)/64),
		pos:   make([]uint32, n),
		skip:  make([]uint32, n),
		ids:   make([]uint32, n),
		m:     uint32(size),
	}
	for i := range ms {
		b.pos[i], b.skip[i] = permutation(key, &ms[i].name, size)
		b.ids[i] = ms[i].id
		maxW = max(maxW, uint64(ms[i].weight))
		sum += uint64(ms[i].weight)
	}
	return b, maxW, sum
}

// turnsByCredit fills the table by the literal rule: every round each
// backend earns its weight in credit and, when the credit reaches W, spends
// W on a turn.
func (b *builder) turnsByCredit(ms []member, maxW uint64) {
	credit := make([]uint64, len(ms))
	for left := len(b.table); ; {
		for i := range ms {
			if credit[i] += uint64(ms[i].weight); credit[i] < maxW {
				continue
			}
			credit[i] -= maxW
			b.claim(i)
			if left--; left == 0 {
				return
			}
		}
	}
}

// turnsByHeap fills the table with the turns taken off a binary min-heap
// keyed by round<<32 | index. The backend of weight W takes a turn every
// round, so the table is full by round M < 2³²; later rounds are clamped to
// 2³²−1, which keeps the key in 64 bits without reordering any turn that
// happens.
func (b *builder) turnsByHeap(ms []member, maxW uint64) {
	n := len(ms)
	turns := make([]uint64, n) // turns taken so far
	h := make([]uint64, n)     // heap of round<<32 | index
	for i := range ms {
		h[i] = nextRound(1, maxW, ms[i].weight)<<32 | uint64(i)
	}
	for i := n/2 - 1; i >= 0; i-- {
		siftDown(h, i)
	}
	for left := len(b.table); left > 0; left-- {
		i := uint32(h[0])
		b.claim(int(i))
		turns[i]++
		h[0] = nextRound(turns[i]+1, maxW, ms[i].weight)<<32 | uint64(i)
		siftDown(h, 0)
	}
}

// nextRound is the round of turn k, ⌈k·W/w⌉, clamped to 2³²−1
// (k <= MaxMaglevSize and W < 2³², so k·W does not overflow).
func nextRound(k, maxW uint64, w uint32) uint64 {
	return min((k*maxW+uint64(w)-1)/uint64(w), math.MaxUint32)
}

// siftDown restores the min-heap h below index i.
func siftDown(h []uint64, i int) {
	for {
		c := 2*i + 1
		if c >= len(h) {
			return
		}
		if c+1 < len(h) && h[c+1] < h[c] {
			c++
		}
		if h[i] <= h[c] {
			return
		}
		h[i], h[c] = h[c], h[i]
		i = c
	}
}

// CheckMaglevSize reports, wrapping ErrSize, a table size that is not a
// prime in [2, MaxMaglevSize].
func CheckMaglevSize(size int) error {
	if size < 2 || size > MaxMaglevSize || !isPrime(size) {
		return fmt.Errorf("maglev size %d: %w: want a prime in [2, %d]", size, ErrSize, MaxMaglevSize)
	}
	return nil
}

// isPrime reports whether n is prime, by trial division (n <= MaxMaglevSize,
// so at most ~2000 divisions).
func isPrime(n int) bool {
	if n < 2 {
		return false
	}
	if n%2 == 0 {
		return n == 2
	}
	for d := 3; d*d <= n; d += 2 {
		if n%d == 0 {
			return false
		}
	}
	return true
}
