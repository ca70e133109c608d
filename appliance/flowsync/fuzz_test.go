package flowsync

import (
	"bytes"
	"crypto/hmac"
	"encoding/binary"
	"net/netip"
	"testing"
	"time"
)

// FuzzReceive feeds arbitrary datagrams to the receive checks and to an
// Endpoint's receive path. With reseal set, the input's last MACSize
// bytes are replaced by a valid MAC first, so that the fuzzer explores
// what lies behind the MAC. Properties: no panic; a rejected datagram
// changes no state; an accepted one verifies, re-encodes to the same
// bytes, and is refused as a replay the second time.
func FuzzReceive(f *testing.F) {
	s := newSealer(testKey, peer, 1000)
	v6 := Record{
		Orig:    Tuple{Src: netip.MustParseAddr("2001:db8::1"), Dst: netip.MustParseAddr("2001:db8::2"), SrcPort: 1, DstPort: 2, Proto: 6},
		Service: Service{VIP: netip.MustParseAddr("2001:db8::2"), Proto: 6, Port: 2},
		Backend: netip.MustParseAddrPort("[2001:db8::3]:80"), Remaining: time.Second,
	}
	for _, b := range [][]byte{
		s.update(recs(3)),
		s.update([]Record{v6, {Kind: KindRemove}}),
		s.bulkUpdate(7, 1, recs(2)),
		s.bulkRequest(7),
		s.bulkEnd(7, 1, 2),
		s.heartbeat(flagSynced, 1, 2),
		s.nack(1000, nackRange{1, 3}, nackRange{9, 1}),
		s.raw(numTypes, 0, []byte("future"), nil),
		[]byte("CLVS"),
	} {
		f.Add(b, false)
		f.Add(b, true)
	}

	ep, err := New(Config{Node: self, Key: testKey, Local: netip.MustParseAddrPort("127.0.0.1:0"), Peer: placeholder, Importer: &countImporter{}})
	if err != nil {
		f.Fatal(err)
	}
	defer ep.Close()
	ep.setDrop(func([]byte) bool { return true })
	mac := newMAC(testKey)

	f.Fuzz(func(t *testing.T, b []byte, reseal bool) {
		if reseal && len(b) >= MACSize {
			b = bytes.Clone(b)
			mac.Reset()
			mac.Write(b[:len(b)-MACSize])
			mac.Sum(b[:len(b)-MACSize])
		}
		o := newOpener(testKey, self)
		h, why := o.check(b)
		if why >= NumRejectReasons {
			t.Fatalf("reason %d out of range", why)
		}
		// The Endpoint's whole receive path, from a fresh replay state.
		ep.open = newOpener(testKey, self)
		ep.receive(b, time.Now())

		if why != RejectNone {
			if o.epoch != 0 || o.win != (window{}) {
				t.Fatalf("rejected (%v) but the state changed", why)
			}
			return
		}
		mac.Reset()
		mac.Write(b[:len(b)-MACSize])
		if !hmac.Equal(mac.Sum(nil), b[len(b)-MACSize:]) {
			t.Fatal("accepted with a MAC that does not verify")
		}
		if out := reencode(t, h, b); !bytes.Equal(out, b) {
			t.Fatalf("re-encoding differs:\n got % x\nwant % x", out, b)
		}
		o.commit(h)
		if _, why := o.check(b); why != RejectReplay {
			t.Fatalf("second copy: %v, want %v", why, RejectReplay)
		}
	})
}

// reencode builds the message with header h from its decoded contents.
func reencode(t *testing.T, h header, b []byte) []byte {
	t.Helper()
	s := newSealer(testKey, h.node, h.epoch)
	s.seq = h.seq - 1
	body := b[HeaderSize : len(b)-MACSize]
	out := appendHeader(nil, h.typ, h.flags)
	switch h.typ {
	case TypeUpdate:
		if h.flags&flagBulk != 0 {
			out = appendBulkPrefix(out, binary.BigEndian.Uint32(body[bRequest:]), binary.BigEndian.Uint64(body[bFirstSeq:]))
			body = body[bulkPrefixSize:]
		}
		for i := range h.count {
			var r Record
			if err := r.Decode(body[i*RecordSize:]); err != nil {
				t.Fatalf("record %d of an accepted message: %v", i, err)
			}
			out = r.Append(out)
		}
	case TypeBulkRequest:
		out = appendBulkRequest(out, binary.BigEndian.Uint32(body[bRequest:]))
	case TypeBulkEnd:
		out = appendBulkEnd(out, binary.BigEndian.Uint32(body[bRequest:]), binary.BigEndian.Uint64(body[bFirstSeq:]), binary.BigEndian.Uint64(body[bRecords:]))
	case TypeHeartbeat:
		out = appendHeartbeat(out, binary.BigEndian.Uint64(body[bAckEpoch:]), binary.BigEndian.Uint64(body[bAckSeq:]))
	case TypeNack:
		var rs []nackRange
		for r := body[nackPrefixSize:]; len(r) > 0; r = r[nackRangeSize:] {
			rs = append(rs, nackRange{binary.BigEndian.Uint64(r[rFirst:]), binary.BigEndian.Uint32(r[rNumber:])})
		}
		out = appendNack(out, binary.BigEndian.Uint64(body[bNackEpoch:]), rs)
	default:
		t.Fatalf("accepted type %v", h.typ)
	}
	return s.seal(out, h.count)
}
