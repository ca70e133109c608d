package health

import (
	"strings"
	"testing"
)

func FuzzParseKind(f *testing.F) {
	for _, n := range kindNames {
		f.Add(n)
	}
	f.Add("HTTPS")
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		k, err := ParseKind(s)
		if err != nil {
			return
		}
		if !strings.EqualFold(k.String(), s) {
			t.Fatalf("ParseKind(%q) = %v", s, k)
		}
	})
}

// FuzzMachine drives a Machine with arbitrary results and checks it
// against the definition: the state changes only when the current run of
// successes reaches Rise (to Up) or of failures reaches Fall (to Down).
func FuzzMachine(f *testing.F) {
	f.Add(uint8(2), uint8(3), []byte{1, 1, 0, 0, 0, 1, 0, 1, 1})
	f.Fuzz(func(t *testing.T, rise, fall uint8, results []byte) {
		m := NewMachine(int(rise%8), int(fall%8))
		r, fl := max(int(rise%8), 1), max(int(fall%8), 1)
		okRun, failRun := 0, 0
		for i, b := range results {
			healthy := b&1 == 1
			from, to := m.Observe(healthy)
			if healthy {
				okRun, failRun = okRun+1, 0
			} else {
				okRun, failRun = 0, failRun+1
			}
			want := from
			switch {
			case okRun >= r:
				want = StateUp
			case failRun >= fl:
				want = StateDown
			}
			if to != want {
				t.Fatalf("step %d: %v -> %v, want %v (runs %d/%d, rise %d fall %d)", i, from, to, want, okRun, failRun, r, fl)
			}
			if ok, fail := m.Consecutive(); ok != okRun || fail != failRun {
				t.Fatalf("step %d: Consecutive = %d, %d; want %d, %d", i, ok, fail, okRun, failRun)
			}
		}
	})
}
