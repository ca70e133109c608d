package flowsync

import (
	"testing"
	"time"
)

// countImporter counts records and allocates nothing.
type countImporter struct{ n int }

func (c *countImporter) Import(Record) error { c.n++; return nil }

// TestNoAllocs holds the allocation contract: encoding, sealing, Send,
// verification, decoding, the receive path and Stats allocate nothing.
func TestNoAllocs(t *testing.T) {
	rs := recs(8)
	buf := make([]byte, 0, DefaultMaxMessageSize)
	s := newSealer(testKey, peer, 1000)
	o := newOpener(testKey, self)
	msg := s.update(rs)
	var r Record

	// Fresh sequence numbers for the paths that commit.
	const runs = 100
	stream := make([][]byte, runs+2)
	for i := range stream {
		stream[i] = s.update(rs)
	}
	next := 0
	// Every other message lost: each arrival leaves a gap behind it.
	gapped := make([][]byte, runs+2)
	for i := range gapped {
		s.update(rs)
		gapped[i] = s.update(rs)
	}
	nextGap := 0

	imp := &countImporter{}
	c := fastConfig(self)
	c.Importer = imp
	e := newEndpoint(t, c) // peer is the placeholder: writes go nowhere
	full := recs(e.maxLive)
	e.Send(full) // sequence 1, kept for a Nack
	nackBody := appendNack(nil, 0, []nackRange{{1, 1}})[nackPrefixSize:]

	tests := []struct {
		name string
		fn   func()
	}{
		{"Record.Append", func() { buf = rs[0].Append(buf[:0]) }},
		{"Record.Decode", func() { _ = r.Decode(msg[HeaderSize:]) }},
		{"seal update", func() {
			buf = appendHeader(buf[:0], TypeUpdate, 0)
			for i := range rs {
				buf = rs[i].Append(buf)
			}
			buf = s.seal(buf, len(rs))
		}},
		{"check", func() { o.check(msg) }},
		{"Endpoint.Send", func() { e.Send(full) }}, // one full message: sealed and written
		{"Endpoint.Send partial and Flush", func() { e.Send(rs[:3]); e.Flush() }},
		{"Endpoint.receive", func() { e.receive(stream[next], time.Now()); next++ }},
		{"Endpoint.receive after a gap (a Nack goes out)", func() { e.receive(gapped[nextGap], time.Now()); nextGap++ }},
		{"Endpoint.resend", func() { e.resend(e.seal.epoch, nackBody) }},
		{"Endpoint.Stats", func() { _ = e.Stats() }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if n := testing.AllocsPerRun(runs, tt.fn); n != 0 {
				t.Fatalf("%v allocations per run, want 0", n)
			}
		})
	}
	if st := e.Stats(); st.SendErrors != 0 || st.MessagesSent < 2*runs || st.Imported != uint64(len(rs)*2*(runs+1)) ||
		st.NacksSent != runs+1 || st.Resent != runs+1 {
		t.Fatalf("the measured calls did not do their work: %+v", st)
	}
}
