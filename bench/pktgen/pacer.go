package pktgen

import (
	"math"
	"time"
)

// clock is what the generator reads time from and sleeps on: the real
// monotonic clock, or a fake one in tests.
type clock interface {
	now() int64 // nanoseconds, monotonic
	sleep(d time.Duration)
}

// monoClock is the real clock: Nanotime and time.Sleep.
type monoClock struct{}

func (monoClock) now() int64            { return nanotime() }
func (monoClock) sleep(d time.Duration) { time.Sleep(d) }

// Pacing constants.
//
// A Go sleep overshoots by about a millisecond (10 us, 100 us and 500 us
// sleeps took 1.1, 1.0 and 0.6 ms longer than asked, 2 ms ones 0.24 ms, on
// the 2-core VM, Go 1.26), so the generator sleeps only when the next send is
// more than sleepMin away, wakes sleepSlack early, and spins on the clock
// for the rest. The spin is bounded by the next send time, itself bounded
// by the run's end.
const (
	// pacingQuantum is the time a paced batch is sized for: at rates
	// below BatchSize frames per pacingQuantum (1.28 M frames/s) batches
	// shrink to rate*pacingQuantum frames (at least one), so that frames
	// leave at most this far apart from where an even spacing puts them.
	pacingQuantum = 50 * time.Microsecond
	sleepMin      = 3 * time.Millisecond
	sleepSlack    = 1500 * time.Microsecond
	sleepMax      = 50 * time.Millisecond // so a cancelled context is seen within this
)

// DefaultBurst is GeneratorConfig.Burst's default. With 1 ms, a 50k
// frames/s run over a veth on the shared 2-core VM fell 1.7% short (the
// generator descheduled now and then for longer); with 10 ms it held the
// rate within 0.1%.
const DefaultBurst = 10 * time.Millisecond

// pacer is a token bucket of frames against a monotonic clock: tokens
// accrue at the target rate up to burst, and each frame sent spends one.
// Time is integer nanoseconds; tokens are float64, whose rounding error
// stays below one frame over 2^52 frames. The zero value sends nothing;
// use newPacer.
type pacer struct {
	perNS  float64 // tokens per nanosecond
	burst  float64 // most tokens held
	tokens float64
	last   int64   // clock reading tokens were last brought up to
	missed float64 // tokens lost to the burst cap
}

// newPacer returns a pacer for rate frames per second holding up to burst
// frames, empty at now.
func newPacer(rate float64, burst int, now int64) pacer {
	return pacer{perNS: rate / 1e9, burst: float64(burst), last: now}
}

// available brings the bucket up to now and returns the whole tokens in it.
func (p *pacer) available(now int64) int {
	if now > p.last {
		p.tokens += float64(now-p.last) * p.perNS
		if p.tokens > p.burst {
			p.missed += p.tokens - p.burst
			p.tokens = p.burst
		}
		p.last = now
	}
	return int(p.tokens)
}

// spend takes n tokens, which available reported.
func (p *pacer) spend(n int) { p.tokens -= float64(n) }

// readyAt returns the clock reading at which the bucket holds n tokens
// (n <= burst), counting from the last available.
func (p *pacer) readyAt(n int) int64 {
	need := float64(n) - p.tokens
	if need <= 0 {
		return p.last
	}
	return p.last + int64(math.Ceil(need/p.perNS))
}

// pacingFor returns the batch size and the bucket depth for a target
// rate, with batches of at most batch frames and burst the time the bucket
// holds.
func pacingFor(rate float64, batch int, burst time.Duration) (quantum, depth int) {
	quantum = int(min(float64(batch), math.Max(1, rate*pacingQuantum.Seconds())))
	depth = int(min(math.MaxInt32, math.Max(float64(2*quantum), rate*burst.Seconds())))
	return quantum, depth
}
