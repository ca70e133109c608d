package sched

import (
	"errors"
	"net/netip"
	"testing"
)

func TestKind(t *testing.T) {
	tests := []struct {
		k    Kind
		name string
	}{
		{KindMaglev, "maglev"},
		{KindWRR, "wrr"},
		{KindLeastConn, "lc"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.k.String(); got != tt.name {
				t.Errorf("String() = %q, want %q", got, tt.name)
			}
			k, err := ParseKind(tt.name)
			if err != nil || k != tt.k {
				t.Errorf("ParseKind(%q) = %v, %v", tt.name, k, err)
			}
			text, err := tt.k.MarshalText()
			var back Kind
			if err != nil || back.UnmarshalText(text) != nil || back != tt.k {
				t.Errorf("text round trip: %q, %v -> %v", text, err, back)
			}
		})
	}
	if got := Kind(0); got != KindMaglev {
		t.Errorf("zero Kind = %v, want maglev", got)
	}
	if got := Kind(9).String(); got != "Kind(9)" {
		t.Errorf("Kind(9).String() = %q", got)
	}
	if _, err := Kind(9).MarshalText(); !errors.Is(err, ErrUnknownKind) {
		t.Errorf("Kind(9).MarshalText error = %v", err)
	}
	for _, s := range []string{"", "Maglev", "rr", "wlc", "lc "} {
		if _, err := ParseKind(s); !errors.Is(err, ErrUnknownKind) {
			t.Errorf("ParseKind(%q) error = %v, want ErrUnknownKind", s, err)
		}
	}
}

func TestNew(t *testing.T) {
	pool := weightedPool(1, 2, 3)
	active := NewActive(3)
	hs := flowHashes(&testKey, 100, 1)

	t.Run("maglev", func(t *testing.T) {
		s, err := New(KindMaglev, testKey, 0, pool, nil)
		if err != nil {
			t.Fatal(err)
		}
		m := mustMaglev(t, testKey, DefaultMaglevSize, pool)
		cursor := uint32(5)
		for _, h := range hs {
			got, ok := s.Pick(h, &cursor)
			want, _ := m.Pick(h)
			if !ok || got != want {
				t.Fatalf("Pick(%#x) = %d, %v; Maglev.Pick = %d", h, got, ok, want)
			}
		}
		if cursor != 5 {
			t.Errorf("maglev moved the cursor to %d", cursor)
		}
	})
	t.Run("wrr", func(t *testing.T) {
		s, err := New(KindWRR, testKey, 0, pool, nil)
		if err != nil {
			t.Fatal(err)
		}
		want := cycleOf(NewWRR(pool), 12)
		var c uint32
		for i, h := range hs[:12] {
			if got, _ := s.Pick(h, &c); got != want[i] {
				t.Fatalf("pick %d = %d, want %d", i, got, want[i])
			}
		}
	})
	t.Run("lc", func(t *testing.T) {
		s, err := New(KindLeastConn, testKey, 0, pool, active)
		if err != nil {
			t.Fatal(err)
		}
		var c uint32
		for range 60 {
			id, _ := s.Pick(hs[0], &c)
			active.Inc(id)
		}
		for id := range uint32(3) {
			if got := active.Load(id); got != int64(10*(id+1)) {
				t.Errorf("backend %d: %d flows, want %d", id, got, 10*(id+1))
			}
		}
	})

	dup := append(weightedPool(1, 1), Backend{ID: 7, Addr: addr4(0), Port: 80, Weight: 1})
	errTests := []struct {
		name   string
		kind   Kind
		size   int
		pool   []Backend
		active *Active
		want   error
	}{
		{"maglev bad size", KindMaglev, 100, pool, nil, ErrSize},
		{"maglev duplicate", KindMaglev, 0, dup, nil, ErrDuplicate},
		{"wrr duplicate", KindWRR, 0, dup, nil, ErrDuplicate},
		{"lc duplicate", KindLeastConn, 0, dup, active, ErrDuplicate},
		{"wrr bad address", KindWRR, 0, []Backend{{ID: 1, Weight: 1}}, nil, ErrInvalidAddr},
		{"lc no active", KindLeastConn, 0, pool, nil, ErrNoActive},
		{"lc id out of range", KindLeastConn, 0, equalPool(4), active, ErrIDOutOfRange},
		{"unknown kind", Kind(3), 0, pool, active, ErrUnknownKind},
	}
	for _, tt := range errTests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := New(tt.kind, testKey, tt.size, tt.pool, tt.active)
			if !errors.Is(err, tt.want) || s != nil {
				t.Errorf("New = %v, %v; want nil, %v", s, err, tt.want)
			}
		})
	}
	t.Run("lc drained id out of range is fine", func(t *testing.T) {
		p := append(weightedPool(1, 1), Backend{ID: 9, Addr: netip.MustParseAddr("10.9.9.9"), Port: 80})
		if _, err := New(KindLeastConn, testKey, 0, p, NewActive(2)); err != nil {
			t.Error(err)
		}
	})
}

func TestSchedulerMethods(t *testing.T) {
	pool := weightedPool(1, 2)
	m := mustMaglev(t, testKey, 0, pool)
	var c uint32
	if got, _ := m.Scheduler().Pick(42, &c); got != func() uint32 { id, _ := m.Pick(42); return id }() {
		t.Error("Maglev.Scheduler disagrees with Pick")
	}
	if got, _ := NewWRR(pool).Scheduler().Pick(0, &c); got != 1 || c != 1 {
		t.Errorf("WRR.Scheduler().Pick = %d, cursor %d", got, c)
	}
	c = 0
	if got, _ := NewLeastConn(pool, NewActive(2)).Scheduler().Pick(0, &c); got != 0 || c != 1 {
		t.Errorf("LeastConn.Scheduler().Pick = %d, cursor %d", got, c)
	}
}
