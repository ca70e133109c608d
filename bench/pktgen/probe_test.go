package pktgen

import (
	"math"
	"testing"
)

func TestParseProbe(t *testing.T) {
	full := make([]byte, ProbeSize)
	putProbe(full, ProbeFull, Probe{Stream: 0xdeadbeef, Seq: math.MaxUint64, Time: math.MaxInt64})
	compact := make([]byte, ProbeCompactSize)
	putProbe(compact, ProbeCompact, Probe{Stream: 0xbeef, Seq: 1<<48 - 1, Time: 1234567890123})
	for _, tc := range []struct {
		name    string
		payload []byte
		want    Probe
		ok      bool
	}{
		{"full", full, Probe{Stream: 0xdeadbeef, Seq: math.MaxUint64, Time: math.MaxInt64}, true},
		{"full, longer payload", append(append([]byte(nil), full...), 1, 2, 3), Probe{Stream: 0xdeadbeef, Seq: math.MaxUint64, Time: math.MaxInt64}, true},
		{"full cut short", full[:ProbeSize-1], Probe{}, false},
		{"compact", compact, Probe{Stream: 0xbeef, Seq: 1<<48 - 1, Time: 1234567890123}, true},
		{"compact in a longer payload", append(append([]byte(nil), compact...), 0, 0, 0, 0, 0, 0, 0), Probe{Stream: 0xbeef, Seq: 1<<48 - 1, Time: 1234567890123}, true},
		{"compact cut short", compact[:ProbeCompactSize-1], Probe{}, false},
		{"no magic", make([]byte, 64), Probe{}, false},
		{"full magic with a compact probe's room only", full[:20], Probe{}, false},
		{"empty", nil, Probe{}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, ok := ParseProbe(tc.payload)
			if p != tc.want || ok != tc.ok {
				t.Errorf("got %+v %v, want %+v %v", p, ok, tc.want, tc.ok)
			}
		})
	}
}

func TestProbeFormatString(t *testing.T) {
	for f, want := range map[ProbeFormat]string{ProbeNone: "none", ProbeCompact: "compact", ProbeFull: "full", 5: "ProbeFormat(5)"} {
		if f.String() != want {
			t.Errorf("%d: %q, want %q", f, f.String(), want)
		}
	}
}
