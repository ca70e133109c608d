package flowsync

import (
	"math/rand/v2"
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
		acceptAll(t, &w, 1, 1000)
		if w.lost != 1000-windowSize {
			t.Fatalf("lost %d, want %d", w.lost, 1000-windowSize)
		}
		if w.complete(999, 1000) || !w.complete(1000, 1000) {
			t.Fatal("complete after a jump")
		}
	})
	t.Run("before the first seen is not lost", func(t *testing.T) {
		var w window
		acceptAll(t, &w, span(300, 900)...)
		if w.lost != 0 || w.base != 300 {
			t.Fatalf("lost %d base %d", w.lost, w.base)
		}
		if w.complete(299, 900) {
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
		}
	}
}
