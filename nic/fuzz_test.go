//go:build linux

package nic

import (
	"bytes"
	"encoding/binary"
	"testing"
)

// FuzzXSKPort drives a port and the fake kernel (ring_test.go) through a
// sequence of operations decoded from the input, and checks the port
// against a model of who owns each chunk: the kernel never receives into,
// and the worker is never handed, a chunk the worker holds or the kernel
// is still sending; every frame sent carries the bytes the worker left in
// it; and at the end every chunk is accounted for. The rings are small so
// that they fill and wrap.
func FuzzXSKPort(f *testing.F) {
	f.Add([]byte{0, 10, 1, 8, 2, 3, 1, 8, 3, 2, 9, 0})
	f.Add([]byte{0, 19, 1, 19, 5, 1, 2, 19, 9, 0, 0, 19, 1, 19, 4, 19})
	f.Add([]byte{7, 0, 0, 15, 1, 15, 2, 15, 0, 15, 1, 15, 8, 0, 9, 0, 6, 0, 2, 9})
	f.Add([]byte{10, 0, 0, 12, 1, 12, 2, 12, 10, 0, 9, 0, 6, 3, 0, 12, 1, 5})
	f.Fuzz(fuzzXSKPort)
}

func fuzzXSKPort(t *testing.T, ops []byte) {
	if len(ops) > 400 {
		ops = ops[:400]
	}
	fx := newFakeXSK(t, XDPConfig{Frames: 32, FillSize: 16, RxSize: 16, TxSize: 16, CompSize: 16})
	p := fx.port
	chunkOf := func(addr uint64) uint64 { return addr >> p.shift }

	held := []Desc{}               // what the worker holds, in order
	busy := map[uint64]string{}    // chunk -> who: "worker" or "kernel-tx"
	content := map[uint64][]byte{} // chunk -> bytes the kernel must send
	var seq, received, transmitted, released, passed uint64

	fx.onDeliverTo = func(chunk uint64) {
		if who, ok := busy[chunk>>p.shift]; ok {
			t.Fatalf("kernel receives into chunk %d held by %s", chunk>>p.shift, who)
		}
	}
	fx.onSend = func(d Desc, data []byte) {
		c := chunkOf(d.Addr)
		if busy[c] != "kernel-tx" {
			t.Fatalf("kernel sends chunk %d, which was not transmitted (%q)", c, busy[c])
		}
		if !bytes.Equal(data, content[c]) {
			t.Fatalf("chunk %d sent %x, worker left %x", c, data, content[c])
		}
	}
	fx.onComplete = func(addr uint64) { delete(busy, chunkOf(addr)) }

	take := func(k int, fromEnd bool) []Desc {
		k = min(k, len(held))
		var out []Desc
		if fromEnd {
			out = append(out, held[len(held)-k:]...)
			held = held[:len(held)-k]
		} else {
			out = append(out, held[:k]...)
			held = held[k:]
		}
		return out
	}
	d := make([]Desc, 32)
	for i := 0; i+1 < len(ops); i += 2 {
		op, arg := ops[i]%11, int(ops[i+1])
		switch op {
		case 0: // the wire delivers frames
			for range arg % 20 {
				var b [12]byte
				binary.BigEndian.PutUint64(b[:], seq)
				copy(b[8:], "data")
				if fx.deliver(b[:8+arg%5]) {
					seq++
				}
			}
		case 1: // Receive
			n := p.Receive(d[:arg%20+1])
			for _, x := range d[:n] {
				c := chunkOf(x.Addr)
				if who, ok := busy[c]; ok {
					t.Fatalf("Receive hands out chunk %d held by %s", c, who)
				}
				if x.Addr&(p.chunk-1) != uint64(p.headroom) {
					t.Fatalf("frame at %#x not behind the headroom", x.Addr)
				}
				busy[c] = "worker"
				held = append(held, x)
			}
			received += uint64(n)
		case 2: // Transmit, some frames grown into the headroom
			out := take(arg%8+1, false)
			for j := range out {
				x := &out[j]
				frame := fx.umem[x.Addr : x.Addr+uint64(x.Len)]
				frame[0] ^= 0xff
				// Grow into the headroom only while it has room: a frame the
				// TX ring refused comes back and may be grown again, and a
				// worker that grew it past its chunk's start would be the bug.
				if (arg+j)%3 == 0 && x.Addr&(p.chunk-1) >= 20 {
					copy(fx.umem[x.Addr-20:], frame)
					x.Addr -= 20
					x.Len += 20
					copy(fx.umem[x.Addr+uint64(x.Len)-20:], "twenty bytes of tail")
				}
				content[chunkOf(x.Addr)] = append([]byte(nil), fx.umem[x.Addr:x.Addr+uint64(x.Len)]...)
				busy[chunkOf(x.Addr)] = "kernel-tx" // the kick inside Transmit may send it
			}
			n := p.Transmit(out)
			for _, x := range out[n:] {
				busy[chunkOf(x.Addr)] = "worker"
			}
			transmitted += uint64(n)
			held = append(out[n:], held...) // the worker keeps what was refused
		case 3:
			out := take(arg%8+1, true)
			p.Release(out)
			for _, x := range out {
				delete(busy, chunkOf(x.Addr))
			}
			released += uint64(len(out))
		case 4:
			out := take(arg%8+1, true)
			p.Pass(out)
			for _, x := range out {
				delete(busy, chunkOf(x.Addr))
			}
			passed += uint64(len(out))
		case 5:
			fx.budget = arg % 4 * 3
		case 6:
			fx.fail = append(fx.fail, TXError(arg%int(numTXErrors)))
		case 7:
			fx.deferComp = !fx.deferComp
			if !fx.deferComp {
				fx.completeAll()
			}
		case 8:
			fx.completeAll()
		case 9:
			p.pollReady()
		case 10:
			p.tx.flags.Store(p.tx.flags.Load() ^ xskRingNeedWakeup)
		}
		fx.check()
		if own := p.owners(); own[frameHeld] != len(held) {
			t.Fatalf("op %d: port counts %d held, worker holds %d", i/2, own[frameHeld], len(held))
		}
	}

	// Drain: give everything back, let the kernel send and complete.
	out := take(len(held), true)
	p.Release(out)
	released += uint64(len(out))
	fx.budget, fx.fail, fx.deferComp = 0, nil, false
	fx.completeAll()
	p.tx.flags.Store(xskRingNeedWakeup)
	p.pollReady()
	p.pollReady()
	fx.check()
	if own := p.owners(); own[frameHeld] != 0 || own[frameTX] != 0 || own[frameFree]+own[frameFill] != 32 {
		t.Fatalf("after drain: owners %v", own)
	}
	s := fx.c.snapshot()
	if s.Received != received || s.Transmitted != transmitted || s.Completed != transmitted ||
		s.Released != released || s.Passed != passed || s.TXKicks != uint64(fx.kicks) ||
		s.Stray != 0 || uint64(fx.nsent) != transmitted {
		t.Fatalf("stats %+v; model rx %d tx %d released %d passed %d; kernel sent %d kicks %d",
			s, received, transmitted, released, passed, fx.nsent, fx.kicks)
	}
}
