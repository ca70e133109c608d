package conntrack

import (
	"encoding/binary"
	"testing"
	"time"
)

const sec = Time(time.Second)

// key4 builds a distinct IPv4 key from n: client 10.x.y.z:port -> VIP.
func key4(n uint32, proto uint8) Key4 {
	var k Key4
	binary.BigEndian.PutUint32(k.Src[:], 0x0a000000|n>>8)
	k.Dst = [4]byte{192, 0, 2, 1}
	k.SrcPort = uint16(1024 + n&0xff)
	k.DstPort = 80
	k.Proto = proto
	return k
}

// reply4 is the reply key of key4(n) after full NAT: backend -> local address.
func reply4(n uint32, proto uint8) Key4 {
	var k Key4
	k.Src = [4]byte{198, 51, 100, 7}
	binary.BigEndian.PutUint32(k.Dst[:], 0xac100000|n>>16)
	k.SrcPort = 8080
	k.DstPort = uint16(n)
	k.Proto = proto
	return k
}

func key6(n uint32, proto uint8) Key6 {
	var k Key6
	k.Src = [16]byte{0x20, 0x01, 0x0d, 0xb8}
	binary.BigEndian.PutUint32(k.Src[12:], n)
	k.Dst = [16]byte{0x20, 0x01, 0x0d, 0xb8, 0xff, 15: 1}
	k.SrcPort = uint16(n)
	k.DstPort = 443
	k.Proto = proto
	return k
}

func reply6(n uint32, proto uint8) Key6 {
	k := key6(n, proto)
	k.Src, k.Dst = [16]byte{0xfd, 15: 7}, [16]byte{0xfd, 1, 15: 1}
	binary.BigEndian.PutUint32(k.Dst[8:], n)
	k.SrcPort, k.DstPort = 8080, uint16(n>>16)
	return k
}

// natFlow4 is a full-NAT IPv4 flow.
func natFlow4(n uint32, proto uint8) Flow[Key4] {
	return Flow[Key4]{Orig: key4(n, proto), Reply: reply4(n, proto), HasReply: true, Service: 1, Backend: n % 7}
}

// dsrFlow4 is a one-way IPv4 flow.
func dsrFlow4(n uint32, proto uint8) Flow[Key4] {
	return Flow[Key4]{Orig: key4(n, proto), OneWay: true, Service: 2, Backend: n % 5}
}

func newTable[K Key](t testing.TB, cfg Config) *Table[K] {
	t.Helper()
	if cfg.Seed == 0 {
		cfg.Seed = 12345
	}
	tb, err := New[K](cfg)
	if err != nil {
		t.Fatal(err)
	}
	return tb
}

// deadlineOf returns e's deadline in seconds (0 if not live).
func deadlineOf[K Key](e *Entry[K]) uint32 {
	w := e.word.Load()
	if !isLive(w) {
		return 0
	}
	return wordDeadline(w)
}

// checkIndex verifies the index invariants with no concurrent writers:
// every occupied slot points at a live entry holding the slot's key and
// tag; every live entry's keys are indexed exactly once; each bucket's
// overflow count equals the number of keys whose probe passed it.
func checkIndex[K Key](tb testing.TB, t *Table[K]) {
	tb.Helper()
	want := make([]uint64, len(t.buckets))
	seen := make(map[uint64]int)
	for b := range t.buckets {
		for s := range t.buckets[b].slot {
			v := t.buckets[b].slot[s].Load()
			if v == 0 {
				continue
			}
			e := t.entryAt(v)
			if !isLive(e.word.Load()) {
				tb.Fatalf("bucket %d slot %d: entry %d not live (word %#x)", b, s, slotIdx(v), e.word.Load())
			}
			k := e.key(slotDir(v))
			h := t.Hash(k)
			if tagOf(h) != uint32(v>>32) {
				tb.Fatalf("bucket %d slot %d: tag mismatch", b, s)
			}
			seen[v]++
			// Walk from home to b, counting passes.
			p := h & t.mask
			for i := uint64(0); p != uint64(b); i++ {
				if i > t.mask {
					tb.Fatalf("bucket %d slot %d: not on its probe sequence", b, s)
				}
				want[p]++
				p = (p + i + 1) & t.mask
			}
		}
	}
	for b := range t.buckets {
		if got := t.buckets[b].ovf.Load(); got != want[b] {
			tb.Fatalf("bucket %d: ovf %d, want %d", b, got, want[b])
		}
	}
	for i := range t.arena {
		e := &t.arena[i]
		if !isLive(e.word.Load()) {
			continue
		}
		h := t.Hash(&e.flow.Orig)
		if n := seen[slotVal(h, uint32(i), DirOriginal)]; n != 1 {
			tb.Fatalf("entry %d (%v): orig indexed %d times", i, e.flow.Orig, n)
		}
		if e.flow.HasReply {
			h := t.Hash(&e.flow.Reply)
			if n := seen[slotVal(h, uint32(i), DirReply)]; n != 1 {
				tb.Fatalf("entry %d: reply indexed %d times", i, n)
			}
		}
	}
	if n := countSlots(t); n != len(seen) {
		tb.Fatalf("duplicate slot values: %d slots, %d distinct", n, len(seen))
	}
}

func countSlots[K Key](t *Table[K]) int {
	n := 0
	for b := range t.buckets {
		for s := range t.buckets[b].slot {
			if t.buckets[b].slot[s].Load() != 0 {
				n++
			}
		}
	}
	return n
}

// position returns the probe position of slot value v (step*8 + slot), or
// -1 if it is not in the index.
func (t *Table[K]) position(h, v uint64) int {
	b := h & t.mask
	for i := uint64(0); i <= t.mask; i++ {
		bk := &t.buckets[b]
		for s := range bk.slot {
			if bk.slot[s].Load() == v {
				return int(i)*8 + s
			}
		}
		if bk.ovf.Load() == 0 {
			break
		}
		b = (b + i + 1) & t.mask
	}
	return -1
}
