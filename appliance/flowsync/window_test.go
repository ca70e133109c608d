package flowsync

import (
	"math/rand/v2"
	"slices"
	"testing"
)

func acceptAll(t *testing.T, w *window, seqs ...uint64) {
	t.Helper()
	for _, s := range seqs {
		if !w.check(s) {
			t.Fatalf("check(%d) refused; window %+v", s, *w)
		}
		w.accept(s)
	}
}

func span(lo, hi uint64) []uint64 {
	var s []uint64
	for q := lo; q <= hi; q++ {
		s = append(s, q)
	}
	return s
}

func TestWindowGapAccounting(t *testing.T) {
	var w window
	acceptAll(t, &w, span(1, 5)...)
	if skipped, late := w.accept(7); skipped != 1 || late {
		t.Fatalf("accept(7) = %d, %v; want a gap of 1", skipped, late)
	}
	if skipped, late := w.accept(6); skipped != 0 || !late {
		t.Fatalf("accept(6) = %d, %v; want late", skipped, late)
	}
	if skipped, _ := w.accept(20); skipped != 12 {
		t.Fatalf("accept(20) skipped %d, want 12", skipped)
	}
}

func TestWindowLostAndComplete(t *testing.T) {
	t.Run("in order", func(t *testing.T) {
		var w window
		acceptAll(t, &w, span(1, 1000)...)
		if w.lost != 0 || !w.complete(1, 1000) || !w.complete(990, 995) {
			t.Fatalf("lost %d, complete %v", w.lost, w.complete(1, 1000))
		}
	})
	t.Run("hole in the window", func(t *testing.T) {
		var w window
		acceptAll(t, &w, span(1, 5)...)
		acceptAll(t, &w, span(7, 10)...)
		if w.lost != 0 {
			t.Fatalf("lost %d before the hole left the window", w.lost)
		}
		if w.complete(1, 10) || w.complete(6, 10) || !w.complete(7, 10) || !w.complete(1, 5) {
			t.Fatal("complete misjudged the hole at 6")
		}
		acceptAll(t, &w, 6) // late: the hole fills
		if !w.complete(1, 10) {
			t.Fatal("complete after the late arrival")
		}
	})
	t.Run("hole leaves the window", func(t *testing.T) {
		var w window
		acceptAll(t, &w, span(1, 5)...)
		acceptAll(t, &w, span(7, 6+windowSize-1)...)
		if w.lost != 0 {
			t.Fatalf("lost %d while 6 is still in the window", w.lost)
		}
		acceptAll(t, &w, 6+windowSize)
		if w.lost != 6 {
			t.Fatalf("lost %d, want 6", w.lost)
		}
		if w.check(6) {
			t.Fatal("6 still acceptable")
		}
		if w.complete(5, 6+windowSize) || w.complete(6, 6+windowSize) || !w.complete(7, 6+windowSize) {
			t.Fatal("complete misjudged the lost 6")
		}
	})
	t.Run("jump past the window", func(t *testing.T) {
		var w window
		const far = 3 * windowSize
		acceptAll(t, &w, 1, far)
		if w.lost != far-windowSize {
			t.Fatalf("lost %d, want %d", w.lost, far-windowSize)
		}
		if w.complete(far-1, far) || !w.complete(far, far) {
			t.Fatal("complete after a jump")
		}
	})
	t.Run("before the first seen is not lost", func(t *testing.T) {
		var w window
		acceptAll(t, &w, span(300, 300+windowSize+600)...)
		if w.lost != 0 || w.base != 300 {
			t.Fatalf("lost %d base %d", w.lost, w.base)
		}
		if w.complete(299, 300+windowSize+600) {
			t.Fatal("complete from before the first message seen")
		}
	})
	t.Run("invalid spans", func(t *testing.T) {
		var w window
		acceptAll(t, &w, span(1, 10)...)
		if w.complete(0, 5) || w.complete(6, 5) || w.complete(5, 11) {
			t.Fatal("complete accepted an invalid span")
		}
	})
}

// TestWindowModel drives the window with random arrivals (in order, late,
// duplicated, skipped) and compares it with a plain set.
func TestWindowModel(t *testing.T) {
	for seed := range uint64(20) {
		rng := rand.New(rand.NewPCG(seed, 7))
		var w window
		seen := map[uint64]bool{}
		var top, base uint64
		next := uint64(1 + rng.IntN(50))
		for range 5000 {
			var s uint64
			switch r := rng.IntN(100); {
			case r < 70:
				s = next
				next++
			case r < 75:
				next += uint64(1 + rng.IntN(2*windowSize)) // a burst lost
				s = next
				next++
			default:
				if top < 2 {
					continue
				}
				s = top - uint64(rng.IntN(int(min(top, windowSize+20)))) // late or duplicate
			}
			want := s != 0 && !seen[s] && (top == 0 || s > top || top-s < windowSize)
			if got := w.check(s); got != want {
				t.Fatalf("seed %d: check(%d) = %v, want %v (top %d)", seed, s, got, want, top)
			}
			if !want {
				continue
			}
			w.accept(s)
			seen[s] = true
			if top == 0 {
				base = s
			}
			top = max(top, s)
			// The model's lost: the highest number in [base, top-windowSize] never seen.
			var lost uint64
			if top >= windowSize {
				for q := top - windowSize; q >= base && q > 0; q-- {
					if !seen[q] {
						lost = q
						break
					}
				}
			}
			if w.lost != lost {
				t.Fatalf("seed %d: lost %d, want %d (top %d base %d)", seed, w.lost, lost, top, base)
			}
			f := top - uint64(rng.IntN(int(min(top-base+1, 3*windowSize))))
			wantComplete := f >= base && lost < f
			for q := f; q <= top && wantComplete; q++ {
				wantComplete = seen[q]
			}
			if got := w.complete(f, top); got != wantComplete {
				t.Fatalf("seed %d: complete(%d, %d) = %v, want %v", seed, f, top, got, wantComplete)
			}
			if rng.IntN(50) == 0 { // named at most 100 times a hole: under the cap, and always due
				var want []nackRange
				lo := base
				if top >= windowSize {
					lo = max(lo, top-windowSize+1)
				}
				for q := lo; q < top; q++ {
					if seen[q] {
						continue
					}
					if n := len(want); n > 0 && want[n-1].first+uint64(want[n-1].n) == q {
						want[n-1].n++
					} else {
						want = append(want, nackRange{q, 1})
					}
				}
				if got, _ := w.missing(make([]nackRange, 0, windowSize), 1, 0, 255); !slices.Equal(got, want) {
					t.Fatalf("seed %d: missing %v, want %v (top %d base %d)", seed, got, want, top, base)
				}
			}
		}
	}
}

// TestWindowMissing: runs of holes, oldest first, new ones at once and
// the others again after retry, each named at most maxNacks times, up to
// the room given; a reused slot starts again at zero.
func TestWindowMissing(t *testing.T) {
	var w window
	acceptAll(t, &w, 5, 6, 8, 11, 12, 14)
	rs := make([]nackRange, 0, 8)
	check := func(now int64, room int, want []nackRange, wantLater bool) {
		t.Helper()
		got, later := w.missing(rs[:0:room], now, 10, 2)
		if !slices.Equal(got, want) || later != wantLater {
			t.Fatalf("at %d: missing %v later %v, want %v %v", now, got, later, want, wantLater)
		}
	}
	check(100, 1, []nackRange{{7, 1}}, true)           // no room for the rest
	check(105, 8, []nackRange{{9, 2}, {13, 1}}, true)  // new holes at once; 7 not due
	check(110, 8, []nackRange{{7, 1}}, true)           // 7 due again
	check(115, 8, []nackRange{{9, 2}, {13, 1}}, false) // named twice: no more after
	check(200, 8, nil, false)                          // every hole named twice
	acceptAll(t, &w, 15, 17)                           // a new hole, 16
	check(201, 8, []nackRange{{16, 1}}, true)          // the others are spent
	acceptAll(t, &w, 17+windowSize)                    // 16's slot (and the rest) reused
	got, _ := w.missing(rs, 300, 10, 2)                // holes that left (7, 9, 10, 13, 16) are not named
	if len(got) != 1 || got[0] != (nackRange{18, windowSize - 1}) || w.lost != 16 {
		t.Fatalf("after the window moved: %v (lost %d)", got, w.lost)
	}
}
