package flowsync

import (
	"testing"
	"time"
)

// BenchmarkSeal measures encoding records and sealing the message (HMAC
// over header and body), per message kind; ns/record is the cost of one
// record's share.
func BenchmarkSeal(b *testing.B) {
	maxLive := (DefaultMaxMessageSize - HeaderSize - MACSize) / RecordSize
	rs := recs(maxLive)
	for _, bc := range []struct {
		name string
		n    int
	}{{"update-1", 1}, {"update-full", maxLive}, {"heartbeat", 0}} {
		b.Run(bc.name, func(b *testing.B) {
			s := newSealer(testKey, peer, 1000)
			buf := make([]byte, 0, DefaultMaxMessageSize)
			b.ReportAllocs()
			for b.Loop() {
				if bc.n == 0 {
					buf = s.seal(appendHeartbeat(appendHeader(buf[:0], TypeHeartbeat, 0), 1, 2), 0)
					continue
				}
				buf = appendHeader(buf[:0], TypeUpdate, 0)
				for i := range bc.n {
					buf = rs[i].Append(buf)
				}
				buf = s.seal(buf, bc.n)
			}
			b.SetBytes(int64(len(buf)))
			if bc.n > 0 {
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(bc.n), "ns/record")
			}
		})
	}
}

// BenchmarkOpen measures the receive checks (MAC included) and decoding
// every record of the message.
func BenchmarkOpen(b *testing.B) {
	maxLive := (DefaultMaxMessageSize - HeaderSize - MACSize) / RecordSize
	for _, bc := range []struct {
		name string
		n    int
	}{{"update-1", 1}, {"update-full", maxLive}, {"heartbeat", 0}} {
		b.Run(bc.name, func(b *testing.B) {
			s := newSealer(testKey, peer, 1000)
			var msg []byte
			if bc.n == 0 {
				msg = s.heartbeat(0, 1, 2)
			} else {
				msg = s.update(recs(bc.n))
			}
			o := newOpener(testKey, self)
			var r Record
			b.ReportAllocs()
			b.SetBytes(int64(len(msg)))
			for b.Loop() {
				h, why := o.check(msg) // not committed: the same message stays fresh
				if why != RejectNone {
					b.Fatal(why)
				}
				for i := range h.count {
					r.Decode(msg[HeaderSize+i*RecordSize:])
				}
			}
			if bc.n > 0 {
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(bc.n), "ns/record")
			}
		})
	}
}

// BenchmarkSend measures Endpoint.Send per record: with the datagram
// written to a loopback UDP socket, and with the write left out.
func BenchmarkSend(b *testing.B) {
	for _, bc := range []struct {
		name  string
		write bool
	}{{"write", true}, {"no-write", false}} {
		b.Run(bc.name, func(b *testing.B) {
			c := fastConfig(self)
			c.FlushInterval = time.Hour
			e, err := New(c)
			if err != nil {
				b.Fatal(err)
			}
			defer e.Close()
			if !bc.write {
				e.setDrop(func([]byte) bool { return true })
			}
			rs := recs(e.maxLive)
			b.ReportAllocs()
			for b.Loop() {
				e.Send(rs)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(len(rs)), "ns/record")
			// Writes that time out (SendTimeout) on a loaded machine are
			// counted, not failed on.
			st := e.Stats()
			b.ReportMetric(float64(st.SendErrors), "send-errors")
			if st.MessagesSent == 0 {
				b.Fatal("nothing sent")
			}
		})
	}
}
