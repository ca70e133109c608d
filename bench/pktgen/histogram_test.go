package pktgen

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// TestHistogramBuckets: the buckets tile the values from 0 to histMaxVal
// without gap or overlap, each at most 1/64 of its lower bound wide.
func TestHistogramBuckets(t *testing.T) {
	next := uint64(0)
	for i := range histBuckets {
		lo, w := histBounds(i)
		if lo != next {
			t.Fatalf("bucket %d starts at %d, want %d", i, lo, next)
		}
		if histIndex(lo) != i || histIndex(lo+w-1) != i {
			t.Fatalf("bucket %d [%d, %d]: indexes %d and %d", i, lo, lo+w-1, histIndex(lo), histIndex(lo+w-1))
		}
		if lo >= 2*histSub && w*histSub > lo {
			t.Fatalf("bucket %d at %d is %d wide: more than 1/%d", i, lo, w, histSub)
		}
		next = lo + w
	}
	if next != histMaxVal+1 {
		t.Fatalf("buckets end at %d, want %d", next, uint64(histMaxVal)+1)
	}
}

// refPercentile is the nearest-rank percentile of sorted values.
func refPercentile(sorted []int64, q float64) int64 {
	rank := int(math.Ceil(q * float64(len(sorted))))
	return sorted[max(rank, 1)-1]
}

// TestHistogramPercentiles compares the histogram with a sorted slice of
// the same values: percentiles within the bucket precision (0.8% plus a
// nanosecond), min, max, count and mean exact.
func TestHistogramPercentiles(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, tc := range []struct {
		name string
		gen  func() int64
		n    int
	}{
		{"constant", func() int64 { return 12345 }, 1000},
		{"one value", func() int64 { return 777 }, 1},
		{"small, exact buckets", func() int64 { return rng.Int64N(128) }, 10000},
		{"uniform 10us-100us", func() int64 { return 10000 + rng.Int64N(90000) }, 100000},
		{"exponential, mean 50us", func() int64 { return int64(rng.ExpFloat64() * 50000) }, 100000},
		{"log-uniform 1ns-10s", func() int64 { return int64(math.Exp(rng.Float64() * math.Log(1e10))) }, 100000},
		{"bimodal with a tail", func() int64 {
			switch r := rng.Float64(); {
			case r < 0.6:
				return 20000 + rng.Int64N(1000)
			case r < 0.999:
				return 80000 + rng.Int64N(5000)
			}
			return 5e6 + rng.Int64N(1e6)
		}, 200000},
		{"beyond the buckets", func() int64 { return 1<<41 + rng.Int64N(1<<40) }, 100},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var h Histogram
			vals := make([]int64, tc.n)
			var sum float64
			for i := range vals {
				vals[i] = tc.gen()
				sum += float64(vals[i])
				h.Record(time.Duration(vals[i]))
			}
			slices.Sort(vals)
			if h.Count() != uint64(tc.n) || int64(h.Min()) != vals[0] || int64(h.Max()) != vals[len(vals)-1] {
				t.Errorf("count %d min %d max %d, want %d %d %d", h.Count(), h.Min(), h.Max(), tc.n, vals[0], vals[len(vals)-1])
			}
			if want := sum / float64(tc.n); math.Abs(float64(h.Mean())-want) > 1+want*1e-9 {
				t.Errorf("mean %d, want %.1f", h.Mean(), want)
			}
			for _, q := range []float64{0, 0.001, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99, 0.999, 0.9999, 1} {
				got, want := int64(h.Percentile(q)), refPercentile(vals, q)
				tol := float64(want)/(2*histSub) + 1
				if want > histMaxVal {
					tol = math.Inf(1) // the last bucket holds everything up there: clamped to [min, max] only
				}
				if math.Abs(float64(got-want)) > tol || got < vals[0] || got > vals[len(vals)-1] {
					t.Errorf("p%v = %d, want %d ± %.0f", q*100, got, want, tol)
				}
			}
		})
	}
}

// TestHistogramMerge: merging histograms is recording all their values in
// one.
func TestHistogramMerge(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	var parts [3]Histogram
	var all Histogram
	for i := range 30000 {
		v := time.Duration(rng.Int64N(1e7))
		parts[i%3].Record(v)
		all.Record(v)
	}
	var merged Histogram
	merged.Merge(&Histogram{}) // an empty one changes nothing
	for i := range parts {
		merged.Merge(&parts[i])
	}
	if merged != all {
		t.Fatalf("merged %v, recorded in one %v", &merged, &all)
	}
	var empty Histogram
	empty.Merge(&Histogram{})
	if empty != (Histogram{}) {
		t.Fatal("merging empties made something")
	}
	one := Histogram{}
	one.Record(5)
	merged.Merge(&one)
	if merged.Min() != 5 {
		t.Errorf("min after merging a smaller value: %v", merged.Min())
	}
}

func TestHistogramEdges(t *testing.T) {
	var h Histogram
	if h.Percentile(0.5) != 0 || h.Min() != 0 || h.Max() != 0 || h.Mean() != 0 || h.Count() != 0 {
		t.Errorf("empty: %v", &h)
	}
	h.Record(-5) // clock trouble: counts as 0
	h.Record(10)
	if h.Min() != 0 || h.Max() != 10 || h.Count() != 2 {
		t.Errorf("negative value: %v", &h)
	}
	if h.Percentile(-1) != 0 || h.Percentile(2) != 10 || h.Percentile(math.NaN()) != 0 {
		t.Errorf("out-of-range quantiles: %v %v %v", h.Percentile(-1), h.Percentile(2), h.Percentile(math.NaN()))
	}
	h.Reset()
	if h.Count() != 0 || h != (Histogram{}) {
		t.Error("Reset left values")
	}
	h.Record(time.Hour) // beyond the buckets: exact min and max still
	if h.Max() != time.Hour || h.Percentile(0.5) != time.Hour {
		t.Errorf("an hour: %v", &h)
	}
}

func TestHistogramNoAllocs(t *testing.T) {
	var h Histogram
	v := time.Duration(0)
	if a := testing.AllocsPerRun(1000, func() { v += 997; h.Record(v) }); a != 0 {
		t.Errorf("Record: %v allocations", a)
	}
}

func BenchmarkHistogramRecord(b *testing.B) {
	var h Histogram
	b.ReportAllocs()
	v := time.Duration(0)
	for b.Loop() {
		v += 997
		h.Record(v & (1<<30 - 1))
	}
}
