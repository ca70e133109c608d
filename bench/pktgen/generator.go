package pktgen

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"runtime"
	"time"

	"github.com/culvert-lb/culvert/nic"
)

// BatchSize is the most frames the generator hands the queue at once, as
// dataplane.BatchSize.
const BatchSize = 64

// stallTimeout is how long Run goes on trying when the queue takes no
// frame at all (no free chunk, the TX ring full) before it gives up with
// ErrStalled.
const stallTimeout = time.Second

// ErrStalled is returned by Run when the queue took no frame for a second.
var ErrStalled = errors.New("pktgen: the queue took no frame for 1s")

// GeneratorConfig configures a Generator. Zero fields take the defaults
// noted on each. It is a plain value: NewGenerator copies it.
type GeneratorConfig struct {
	// Rate is the target in frames per second, paced by a token bucket
	// against the monotonic clock; 0 sends as fast as the queue takes
	// frames. Below 1.28 M frames/s batches shrink (see pacingQuantum),
	// down to single frames.
	Rate float64
	// Batch is the most frames per Transmit, 1 to BatchSize (default
	// BatchSize).
	Batch int
	// Burst is how far the paced generator may fall behind the schedule
	// (descheduled, a full ring) and still catch up, at full speed; what
	// it owes beyond that is not sent (Stats.Missed). Default DefaultBurst;
	// at least two batches' worth whatever it says.
	Burst time.Duration
	// Pin runs the send loop on an OS thread pinned to CPU (nic.PinThread);
	// the thread exits when Run returns.
	Pin bool
	CPU int
}

// Validate reports every problem with c (after defaults), joined.
func (c GeneratorConfig) Validate() error {
	var errs []error
	if c.Rate < 0 || math.IsNaN(c.Rate) || math.IsInf(c.Rate, 0) {
		errs = append(errs, fmt.Errorf("rate: %v is not a rate in frames/s", c.Rate))
	}
	if c.Burst < 0 {
		errs = append(errs, fmt.Errorf("burst: %v is negative", c.Burst))
	}
	if c.Batch < 0 || c.Batch > BatchSize {
		errs = append(errs, fmt.Errorf("batch: %d not in 1..%d", c.Batch, BatchSize))
	}
	if c.Pin && (c.CPU < 0 || c.CPU >= runtime.NumCPU()) {
		errs = append(errs, fmt.Errorf("cpu: %d not in 0..%d", c.CPU, runtime.NumCPU()-1))
	}
	return errors.Join(errs...)
}

// Stats is what one Run did. The counters are the run's own, not the
// generator's life's.
type Stats struct {
	First      uint64        // number (probe sequence) of the run's first frame
	Sent       uint64        // frames the queue took for transmission: First..First+Sent-1
	Bytes      uint64        // their bytes in memory, without FCS
	Refused    uint64        // frames the TX ring refused; released, and sent later under the same numbers
	AllocShort uint64        // batches cut short because the queue had too few free chunks (all in flight)
	Missed     uint64        // paced: frames the schedule owed beyond GeneratorConfig.Burst, not sent
	Kicks      uint64        // transmit kicks (sendto): nic.XDP only
	KickErrors uint64        // kicks that failed (EAGAIN, EBUSY, ...; the frames stay queued): nic.XDP only
	InFlight   uint64        // frames the kernel had not finished with when Run returned: nic.XDP only
	Elapsed    time.Duration // from the start of the run to the end of its last batch
	CPU        time.Duration // user+system time of the sending thread (Linux)
}

// PPS returns the achieved rate in frames per second: Sent over Elapsed.
func (s Stats) PPS() float64 {
	if s.Elapsed <= 0 {
		return 0
	}
	return float64(s.Sent) / s.Elapsed.Seconds()
}

// Merge adds o, a run of another generator at the same time, to s: the
// counters add up, Elapsed is the longer of the two, and First the lower.
func (s *Stats) Merge(o Stats) {
	if s.Sent == 0 || (o.Sent > 0 && o.First < s.First) {
		s.First = o.First
	}
	s.Sent += o.Sent
	s.Bytes += o.Bytes
	s.Refused += o.Refused
	s.AllocShort += o.AllocShort
	s.Missed += o.Missed
	s.Kicks += o.Kicks
	s.KickErrors += o.KickErrors
	s.InFlight += o.InFlight
	s.Elapsed = max(s.Elapsed, o.Elapsed)
	s.CPU += o.CPU
}

func (s Stats) String() string {
	return fmt.Sprintf("sent %d (%.0f frames/s, %d bytes) in %v, cpu %v; refused %d, alloc-short %d, missed %d, kicks %d (%d failed), in flight %d",
		s.Sent, s.PPS(), s.Bytes, s.Elapsed, s.CPU, s.Refused, s.AllocShort, s.Missed, s.Kicks, s.KickErrors, s.InFlight)
}

// Generator transmits a template's frames on a queue: per batch it takes
// empty chunks with Alloc, writes frames into them, and hands them to
// Transmit; the queue reclaims completed chunks in its next Alloc. Frames
// are numbered across runs: a run starts where the previous one stopped.
//
// A chunk that already holds a frame of the template (one this generator
// wrote and got back after transmission) is rewritten in place, only the
// fields that vary; others get a full copy (for a 1514-byte frame, in
// cache: 26 ns in place against 56 ns with the copy, BenchmarkTemplate on
// the 2-core VM). So nothing else may write the chunks of q: one
// generator per queue, and no XDP program redirecting frames into its
// socket. A cheap check (the EtherType and the first six bytes of the IP
// header) falls back to a full copy if a chunk changed.
//
// A Generator is driven by one goroutine at a time: Run must not be called
// concurrently, and the generator must not be used while Run runs. It does
// not own q: the caller closes it. There is no useful zero value: use
// NewGenerator.
type Generator struct {
	q   nic.Queue
	x   *nic.XDP // q, when it is one: kicks, completions, stats
	t   *Template
	cfg GeneratorConfig
	clk clock

	cur      cursor // the next frame
	quantum  int    // frames per batch
	burst    int    // token bucket depth (paced)
	d        [BatchSize]nic.Desc
	shift    uint   // log2(chunk size)
	holds    []bool // per chunk: holds a frame of t at the headroom
	sameWord uint64 // bytes 12..20 of every frame of t (EtherType, IP version..total length, ID)

	st Stats // the running run's counters
}

// NewGenerator returns a generator of t's frames on q, starting at frame 0.
func NewGenerator(q nic.Queue, t *Template, cfg GeneratorConfig) (*Generator, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("generator: %w", err)
	}
	if cfg.Batch == 0 {
		cfg.Batch = BatchSize
	}
	if cfg.Burst == 0 {
		cfg.Burst = DefaultBurst
	}
	cs := q.ChunkSize()
	if cs <= 0 || cs&(cs-1) != 0 || len(q.UMEM())%cs != 0 {
		return nil, fmt.Errorf("generator: queue chunk size %d does not divide its %d-byte UMEM in powers of two", cs, len(q.UMEM()))
	}
	if q.Headroom()+t.Len() > cs {
		return nil, fmt.Errorf("generator: a %d-byte frame after %d bytes of headroom does not fit a %d-byte chunk", t.Len(), q.Headroom(), cs)
	}
	g := &Generator{
		q: q, t: t, cfg: cfg, clk: monoClock{},
		cur:      t.cursorAt(0),
		shift:    uint(bits.TrailingZeros(uint(cs))),
		holds:    make([]bool, len(q.UMEM())/cs),
		sameWord: binary.NativeEndian.Uint64(t.frame[12:20]),
	}
	g.x, _ = q.(*nic.XDP)
	g.quantum, g.burst = cfg.Batch, 0
	if cfg.Rate > 0 {
		g.quantum, g.burst = pacingFor(cfg.Rate, cfg.Batch, cfg.Burst)
	}
	return g, nil
}

// Next returns the number of the next frame to be sent: the frames sent so
// far over the generator's life.
func (g *Generator) Next() uint64 { return g.cur.n }

// Run transmits until duration has passed (if > 0), count frames have been
// sent (if > 0), or ctx is done, whichever comes first; at least one of
// duration and count must be set. With Rate set it paces; without, it
// sends as fast as the queue takes frames. On an AF_XDP queue it then waits
// up to 100 ms for the kernel to finish what is queued. It returns
// ErrStalled if the queue takes no frame for a second, with the stats so
// far. Per batch it allocates nothing.
func (g *Generator) Run(ctx context.Context, duration time.Duration, count uint64) (Stats, error) {
	if duration <= 0 && count == 0 {
		return Stats{}, errors.New("pktgen: run: neither a duration nor a count bounds it")
	}
	if !g.cfg.Pin {
		runtime.LockOSThread() // for threadCPU
		defer runtime.UnlockOSThread()
		return g.run(ctx, duration, count)
	}
	type result struct {
		st  Stats
		err error
	}
	done := make(chan result, 1)
	go func() {
		// Locked for good: the pinned thread exits with the goroutine
		// rather than go back to the scheduler.
		runtime.LockOSThread()
		if err := nic.PinThread(g.cfg.CPU); err != nil {
			done <- result{err: fmt.Errorf("generator: %w", err)}
			return
		}
		st, err := g.run(ctx, duration, count)
		done <- result{st, err}
	}()
	r := <-done
	return r.st, r.err
}

// run is Run on the calling (locked) thread.
func (g *Generator) run(ctx context.Context, duration time.Duration, count uint64) (Stats, error) {
	g.st = Stats{First: g.cur.n}
	var x0 nic.XDPStats
	if g.x != nil {
		x0, _ = g.x.Stats()
	}
	cpu0 := threadCPU()
	done := ctx.Done()
	start := g.clk.now()
	end := int64(math.MaxInt64)
	if duration > 0 {
		end = start + int64(duration)
	}
	var p pacer
	paced := g.cfg.Rate > 0
	if paced {
		p = newPacer(g.cfg.Rate, g.burst, start)
	}
	var err error
	last, progress := start, start
loop:
	for count == 0 || g.st.Sent < count {
		select {
		case <-done:
			break loop
		default:
		}
		now := g.clk.now()
		if now >= end {
			break
		}
		want := g.quantum
		if count > 0 && count-g.st.Sent < uint64(want) {
			want = int(count - g.st.Sent)
		}
		if paced {
			avail := p.available(now)
			if avail < want {
				if !g.waitUntil(min(p.readyAt(want), end), done) {
					break
				}
				continue
			}
			// Behind the schedule: catch up in full batches.
			want = max(want, min(avail, g.cfg.Batch))
			if count > 0 && count-g.st.Sent < uint64(want) {
				want = int(count - g.st.Sent)
			}
		}
		n := g.send(want, now)
		if paced {
			p.spend(n)
		}
		if n > 0 {
			last, progress = g.clk.now(), now
			continue
		}
		if now-progress > int64(stallTimeout) {
			err = ErrStalled
			break
		}
		if g.x != nil {
			g.x.Wait(0) // reap completions and kick the TX ring; the error shows in the next Alloc
		}
	}
	g.st.Elapsed = time.Duration(last - start)
	g.st.Missed = uint64(p.missed)
	g.st.CPU = threadCPU() - cpu0
	if g.x != nil {
		g.drain(x0)
	}
	return g.st, err
}

// drain waits up to 100 ms for the kernel to complete what the queue has
// on its TX ring, and fills in the XDP counters of the run.
func (g *Generator) drain(x0 nic.XDPStats) {
	var x1 nic.XDPStats
	for i := 0; i < 100; i++ {
		g.x.Wait(0)
		var err error
		if x1, err = g.x.Stats(); err != nil || x1.Completed+x1.TXInvalid >= x1.Transmitted {
			break
		}
		time.Sleep(time.Millisecond)
	}
	g.st.Kicks = x1.TXKicks - x0.TXKicks
	g.st.KickErrors = x1.TXErrors.Total() - x0.TXErrors.Total()
	if x1.Transmitted > x1.Completed+x1.TXInvalid {
		g.st.InFlight = x1.Transmitted - x1.Completed - x1.TXInvalid
	}
}

// waitUntil returns when the clock reads t, sleeping while that is more
// than sleepMin away and spinning on the clock for the rest, or false as
// soon as done is closed (checked after every sleep; spins are shorter than
// sleepMin).
func (g *Generator) waitUntil(t int64, done <-chan struct{}) bool {
	for {
		left := t - g.clk.now()
		if left <= 0 {
			return true
		}
		if left < int64(sleepMin) {
			continue // spin: bounded by t
		}
		g.clk.sleep(min(time.Duration(left)-sleepSlack, sleepMax))
		select {
		case <-done:
			return false
		default:
		}
	}
}

// send writes up to want frames (at most BatchSize), stamped ts, into
// chunks from Alloc and transmits them. Frames the TX ring refuses are
// released and their numbers go out again in the next batch. It returns
// the number transmitted and allocates nothing.
func (g *Generator) send(want int, ts int64) int {
	n := g.q.Alloc(g.d[:want])
	if n < want {
		g.st.AllocShort++
	}
	if n == 0 {
		return 0
	}
	umem := g.q.UMEM()
	size := uint64(g.t.Len())
	c := g.cur
	for i := range g.d[:n] {
		d := &g.d[i]
		f := umem[d.Addr : d.Addr+size]
		k := d.Addr >> g.shift
		if !g.holds[k] || binary.NativeEndian.Uint64(f[12:20]) != g.sameWord {
			copy(f, g.t.frame)
			g.holds[k] = true
		}
		g.t.put(f, g.t.fieldsAt(&c), ts)
		d.Len = uint32(size)
		g.t.next(&c)
	}
	sent := g.q.Transmit(g.d[:n])
	if sent < n {
		g.q.Release(g.d[sent:n])
		g.st.Refused += uint64(n - sent)
		c = g.t.cursorAt(g.cur.n + uint64(sent))
	}
	g.cur = c
	g.st.Sent += uint64(sent)
	g.st.Bytes += uint64(sent) * size
	return sent
}
