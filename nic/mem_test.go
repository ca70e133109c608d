package nic

import (
	"bytes"
	"testing"
)

var _ Queue = (*Mem)(nil)

func TestMemRoundTrip(t *testing.T) {
	m, err := NewMem(4, 2048, 256)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 4; i++ {
		if !m.Inject([]byte{byte(i), 1, 2, 3}) {
			t.Fatalf("inject %d failed", i)
		}
	}
	if m.Inject([]byte{9}) {
		t.Fatal("inject into a full UMEM succeeded")
	}
	d := make([]Desc, 8)
	n := m.Receive(d)
	if n != 4 {
		t.Fatalf("received %d, want 4", n)
	}
	for i := 0; i < n; i++ {
		if d[i].Addr%2048 != 256 {
			t.Fatalf("frame %d not at headroom: %#x", i, d[i].Addr)
		}
		f := m.UMEM()[d[i].Addr : d[i].Addr+uint64(d[i].Len)]
		if f[0] != byte(i) {
			t.Fatalf("frame %d holds %v", i, f)
		}
	}
	// Grow frame 0 at the front, as encapsulation does.
	d[0].Addr -= 20
	d[0].Len += 20
	m.SetTXLimit(1)
	if got := m.Transmit(d[:2]); got != 1 {
		t.Fatalf("Transmit with limit 1 took %d", got)
	}
	m.SetTXLimit(0)
	m.Transmit(d[1:2])
	m.Pass(d[2:3])
	m.Release(d[3:4])
	tx := m.TakeTX()
	if len(tx) != 2 || len(tx[0]) != 24 || !bytes.Equal(tx[1], []byte{1, 1, 2, 3}) {
		t.Fatalf("TakeTX = %v", tx)
	}
	if p := m.TakePassed(); len(p) != 1 || p[0][0] != 2 {
		t.Fatalf("TakePassed = %v", p)
	}
	if m.Free() != 4 {
		t.Fatalf("free chunks = %d, want 4", m.Free())
	}
}

func TestMemRejectsEscapingDesc(t *testing.T) {
	m, _ := NewMem(2, 256, 0)
	defer func() {
		if recover() == nil {
			t.Fatal("no panic for a descriptor beyond its chunk")
		}
	}()
	m.Release([]Desc{{Addr: 200, Len: 100}})
}

func TestNewMemValidates(t *testing.T) {
	for _, c := range []struct{ chunks, size, head int }{{1, 1000, 0}, {1, 128, 0}, {1, 2048, 2000}, {0, 2048, 0}} {
		if _, err := NewMem(c.chunks, c.size, c.head); err == nil {
			t.Errorf("NewMem(%d, %d, %d) accepted", c.chunks, c.size, c.head)
		}
	}
}

// TestMemAlloc: Alloc hands out empty frames at the headroom of free
// chunks, shares the free stack with Inject, and its chunks come back
// through Transmit and Release like received ones.
func TestMemAlloc(t *testing.T) {
	for _, c := range []struct {
		name          string
		chunks, limit int
		ask, want     int
	}{
		{"all free", 4, -1, 4, 4},
		{"more than free", 4, -1, 8, 4},
		{"limited", 4, 2, 4, 2},
		{"refused", 4, 0, 4, 0},
		{"nothing asked", 4, -1, 0, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			m, err := NewMem(c.chunks, 2048, 256)
			if err != nil {
				t.Fatal(err)
			}
			m.SetAllocLimit(c.limit)
			d := make([]Desc, c.ask)
			n := m.Alloc(d)
			if n != c.want || m.Free() != c.chunks-n || m.Allocated != uint64(n) {
				t.Fatalf("Alloc(%d) = %d, free %d, allocated %d; want %d", c.ask, n, m.Free(), m.Allocated, c.want)
			}
			seen := map[uint64]bool{}
			for _, x := range d[:n] {
				if x.Len != 0 || x.Addr%2048 != 256 || seen[x.Addr] {
					t.Fatalf("allocated %+v (seen before: %v)", x, seen[x.Addr])
				}
				seen[x.Addr] = true
			}
			if n == c.chunks && m.Inject([]byte{1}) {
				t.Fatal("Inject succeeded with every chunk allocated")
			}
			if n == 0 {
				return
			}
			// Write a frame into the first chunk, grown into the headroom.
			d[0].Addr -= 20
			copy(m.UMEM()[d[0].Addr:], "allocated frame")
			d[0].Len = uint32(len("allocated frame"))
			m.Transmit(d[:1])
			m.Release(d[1:n])
			if tx := m.TakeTX(); len(tx) != 1 || string(tx[0]) != "allocated frame" {
				t.Fatalf("TakeTX = %q", tx)
			}
			if m.Free() != c.chunks {
				t.Fatalf("free %d after giving everything back, want %d", m.Free(), c.chunks)
			}
		})
	}
}
