package pktgen

import (
	"fmt"
	"math"
	"math/bits"
	"time"
)

// Histogram layout: log-linear, as HdrHistogram lays out its buckets.
// Values below 2*histSub nanoseconds each have a bucket of their own;
// above, every power of two [2^k, 2^(k+1)) is cut into histSub equal
// buckets, so a bucket is at most 1/histSub (1.6%) of its lower bound
// wide and the midpoint reported is within 0.8% of any value in it.
// Values from 2^histMaxBits ns (about 18 minutes) on share the last
// bucket; Min, Max and Mean stay exact.
const (
	histSubBits = 6
	histSub     = 1 << histSubBits
	histMaxBits = 40
	histBuckets = (histMaxBits - histSubBits + 1) * histSub // 2^histMaxBits-1 falls in the last
	histMaxVal  = 1<<histMaxBits - 1
)

// Histogram is a latency distribution in fixed log-linear buckets of
// nanoseconds: 1 ns resolution up to 128 ns, then 64 buckets per power of
// two (HDR-like, about two significant digits). It is a plain value
// (about 18 KB, no pointers): Record allocates nothing and takes no lock;
// Merge adds another histogram, so per-receiver or per-worker histograms
// combine exactly. It is not safe for concurrent use. The zero value is an
// empty histogram, ready to use.
type Histogram struct {
	counts   [histBuckets]uint64
	n        uint64
	sum      uint64 // ns; overflows after 584 years of recorded time
	min, max int64  // ns; valid when n > 0
}

// histIndex returns the bucket of v, 0 <= v <= histMaxVal.
func histIndex(v uint64) int {
	e := bits.Len64(v) - histSubBits - 1 // v's exponent above the exact range
	if e <= 0 {
		return int(v)
	}
	return e<<histSubBits + int(v>>uint(e))
}

// histBounds returns the lowest value of bucket i and its width.
func histBounds(i int) (lo, width uint64) {
	if i < 2*histSub {
		return uint64(i), 1
	}
	e := i>>histSubBits - 1
	m := uint64(i - e<<histSubBits) // in [histSub, 2*histSub)
	return m << uint(e), 1 << uint(e)
}

// Record adds one value; a negative one counts as 0.
func (h *Histogram) Record(d time.Duration) {
	v := int64(d)
	if v < 0 {
		v = 0
	}
	if h.n == 0 || v < h.min {
		h.min = v
	}
	if v > h.max {
		h.max = v
	}
	h.n++
	h.sum += uint64(v)
	h.counts[histIndex(min(uint64(v), histMaxVal))]++
}

// Count returns the number of values recorded.
func (h *Histogram) Count() uint64 { return h.n }

// Min returns the smallest value recorded, exactly (0 if none).
func (h *Histogram) Min() time.Duration { return time.Duration(h.min) }

// Max returns the largest value recorded, exactly (0 if none).
func (h *Histogram) Max() time.Duration { return time.Duration(h.max) }

// Mean returns the mean of the values recorded, exactly up to rounding
// (0 if none).
func (h *Histogram) Mean() time.Duration {
	if h.n == 0 {
		return 0
	}
	return time.Duration(math.Round(float64(h.sum) / float64(h.n)))
}

// Percentile returns the value at quantile q (0.5 for the median, 0.99,
// 0.999): the value of nearest rank ceil(q*Count), given as the midpoint
// of its bucket, so within 0.8% of the true value, clamped to
// [Min, Max]. Percentile(0) is Min, Percentile(1) is Max. It returns 0
// for an empty histogram; q outside [0, 1] is clamped, NaN taken as 0.
func (h *Histogram) Percentile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	if math.IsNaN(q) {
		q = 0
	}
	q = max(0, min(q, 1))
	rank := uint64(math.Ceil(q * float64(h.n)))
	if rank <= 1 {
		return time.Duration(h.min)
	}
	if rank >= h.n {
		return time.Duration(h.max)
	}
	var seen uint64
	for i, c := range h.counts {
		if seen += c; seen >= rank {
			lo, w := histBounds(i)
			v := int64(lo + (w-1)/2)
			return time.Duration(max(h.min, min(v, h.max)))
		}
	}
	return time.Duration(h.max) // not reached: the counts add up to n
}

// Merge adds the values recorded in o to h.
func (h *Histogram) Merge(o *Histogram) {
	if o.n == 0 {
		return
	}
	if h.n == 0 || o.min < h.min {
		h.min = o.min
	}
	if o.max > h.max {
		h.max = o.max
	}
	h.n += o.n
	h.sum += o.sum
	for i, c := range o.counts {
		h.counts[i] += c
	}
}

// Reset empties h.
func (h *Histogram) Reset() { *h = Histogram{} }

// String summarizes h: "n=... min=... p50=... p99=... p99.9=... max=... mean=...".
func (h *Histogram) String() string {
	return fmt.Sprintf("n=%d min=%v p50=%v p99=%v p99.9=%v max=%v mean=%v",
		h.n, h.Min(), h.Percentile(0.5), h.Percentile(0.99), h.Percentile(0.999), h.Max(), h.Mean())
}
