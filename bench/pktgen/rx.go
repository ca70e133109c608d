package pktgen

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/culvert-lb/culvert/internal/header"
	"github.com/culvert-lb/culvert/nic"
)

// MaxStreams is the number of streams a receiver tracks; probes of further
// streams are counted in RxStats.Untracked.
const MaxStreams = 64

// dupWindow is how far behind the highest sequence number seen a receiver
// still tells a duplicate from a late frame: a bitmap of the last
// dupWindow numbers per stream (512 bytes).
const dupWindow = 4096

// StreamStats is what a receiver saw of one stream.
//
// Lost is derived, not counted: the numbers between First and Last that
// never arrived. A load balancer spreads a stream's flows over several
// backends, each of which sees only part of the numbers, so Lost means
// something only for the merge of every receiver the stream reaches;
// Reordered and Duplicates are meaningful per receiver too. Frames lost
// after the last one received do not show: compare Received with the
// generator's Stats.Sent for those.
//
// The zero value is a stream with no frames.
type StreamStats struct {
	ID         uint32
	Received   uint64 // frames with a probe of this stream, duplicates included
	Duplicates uint64 // frames whose number had already arrived (detected up to 4096 behind Last)
	Reordered  uint64 // frames with a number lower than one already seen (duplicates not included)
	First      uint64 // lowest number seen (valid if Received > 0)
	Last       uint64 // highest number seen (valid if Received > 0)
}

// Distinct returns the number of distinct frames received.
func (s StreamStats) Distinct() uint64 { return s.Received - s.Duplicates }

// Lost returns how many numbers from First to Last never arrived.
func (s StreamStats) Lost() uint64 {
	if s.Received == 0 {
		return 0
	}
	span := s.Last - s.First + 1
	if d := s.Distinct(); d < span {
		return span - d
	}
	return 0
}

// Merge adds o, the same stream seen by another receiver, to s. Frames
// duplicated across receivers are not detected.
func (s *StreamStats) Merge(o StreamStats) {
	if o.Received == 0 {
		return
	}
	if s.Received == 0 {
		s.First, s.Last = o.First, o.Last
	}
	s.First = min(s.First, o.First)
	s.Last = max(s.Last, o.Last)
	s.Received += o.Received
	s.Duplicates += o.Duplicates
	s.Reordered += o.Reordered
}

// RxStats is what a Receiver saw: every frame its program redirected,
// the probes in them per stream, and their one-way latency. It is a plain
// value; the zero value is nothing received.
type RxStats struct {
	Frames    uint64 // frames received
	Bytes     uint64 // their bytes, without FCS
	NoProbe   uint64 // frames without a probe (probe-less templates, or not a generator's frame)
	Untracked uint64 // probes of streams beyond the first MaxStreams: counted here only
	Future    uint64 // probes stamped later than they were received (clock trouble): not in Latency

	Streams []StreamStats // sorted by ID
	Latency Histogram     // receive time - transmit time, per probe
}

// Stream returns the stats of stream id, and whether any frame of it
// arrived.
func (s *RxStats) Stream(id uint32) (StreamStats, bool) {
	i, ok := slices.BinarySearchFunc(s.Streams, id, func(x StreamStats, id uint32) int { return cmp.Compare(x.ID, id) })
	if !ok {
		return StreamStats{ID: id}, false
	}
	return s.Streams[i], true
}

// Total returns the sum over streams: Received, Duplicates, Reordered and
// Lost (of each stream, as StreamStats.Lost).
func (s *RxStats) Total() (received, duplicates, reordered, lost uint64) {
	for _, x := range s.Streams {
		received += x.Received
		duplicates += x.Duplicates
		reordered += x.Reordered
		lost += x.Lost()
	}
	return
}

// Merge adds o, another receiver's stats over the same time (another
// backend's), to s: streams with the same ID merge as StreamStats.Merge
// does, the latency histograms add up.
func (s *RxStats) Merge(o *RxStats) {
	s.Frames += o.Frames
	s.Bytes += o.Bytes
	s.NoProbe += o.NoProbe
	s.Untracked += o.Untracked
	s.Future += o.Future
	for _, x := range o.Streams {
		i, ok := slices.BinarySearchFunc(s.Streams, x.ID, func(y StreamStats, id uint32) int { return cmp.Compare(y.ID, id) })
		if !ok {
			s.Streams = slices.Insert(s.Streams, i, StreamStats{ID: x.ID})
		}
		s.Streams[i].Merge(x)
	}
	s.Latency.Merge(&o.Latency)
}

func (s *RxStats) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d frames (%d bytes), %d without probe, %d untracked, %d from the future; latency %v",
		s.Frames, s.Bytes, s.NoProbe, s.Untracked, s.Future, &s.Latency)
	for _, x := range s.Streams {
		fmt.Fprintf(&b, "\n  stream %d: received %d (%d..%d), lost %d, reordered %d, duplicates %d",
			x.ID, x.Received, x.First, x.Last, x.Lost(), x.Reordered, x.Duplicates)
	}
	return b.String()
}

// streamState is a receiver's running state for one stream.
type streamState struct {
	StreamStats
	seen [dupWindow / 64]uint64 // bit k%dupWindow: number k arrived, for k in (Last-dupWindow, Last]
}

// record counts frame seq of the stream.
func (s *streamState) record(seq uint64) {
	s.Received++
	if s.Received == 1 {
		s.First, s.Last = seq, seq
		s.seen = [dupWindow / 64]uint64{}
		s.mark(seq)
		return
	}
	switch {
	case seq > s.Last:
		s.forget(s.Last+1, seq)
		s.Last = seq
		s.mark(seq)
	case s.Last-seq < dupWindow:
		w, bit := (seq%dupWindow)/64, uint64(1)<<(seq%64)
		if s.seen[w]&bit != 0 {
			s.Duplicates++
			return
		}
		s.seen[w] |= bit
		s.Reordered++
	default: // too late to tell a duplicate
		s.Reordered++
	}
	s.First = min(s.First, seq)
}

func (s *streamState) mark(seq uint64) { s.seen[(seq%dupWindow)/64] |= 1 << (seq % 64) }

// forget clears the bits of numbers from through to, which take the place
// of numbers dupWindow lower as the window moves up.
func (s *streamState) forget(from, to uint64) {
	if to-from >= dupWindow-1 {
		s.seen = [dupWindow / 64]uint64{}
		return
	}
	for k := from; k <= to; {
		w, b := (k%dupWindow)/64, k%64
		n := min(64-b, to-k+1) // bits left in this word
		mask := ^uint64(0)
		if n < 64 {
			mask = (1<<n - 1) << b
		}
		s.seen[w] &^= mask
		k += n
	}
}

// rxCore reads probes out of frames and keeps the receiver's counts. It is
// pointer-free apart from the queue and allocates nothing per frame.
// It is not safe for concurrent use.
type rxCore struct {
	frames, bytes, noProbe, untracked, future uint64
	nstreams                                  int
	streams                                   [MaxStreams]streamState
	latency                                   Histogram
}

// frame counts one received frame, read at now (Nanotime).
func (c *rxCore) frame(b []byte, now int64) {
	c.frames++
	c.bytes += uint64(len(b))
	p, ok := probeOf(b)
	if !ok {
		c.noProbe++
		return
	}
	s := c.stream(p.Stream)
	if s == nil {
		c.untracked++
		return
	}
	s.record(p.Seq)
	if p.Time > now {
		c.future++
		return
	}
	c.latency.Record(time.Duration(now - p.Time))
}

// stream returns the state of stream id, starting it if there is room,
// else nil. Streams are few, so a linear scan.
func (c *rxCore) stream(id uint32) *streamState {
	for i := range c.streams[:c.nstreams] {
		if c.streams[i].ID == id {
			return &c.streams[i]
		}
	}
	if c.nstreams == MaxStreams {
		return nil
	}
	s := &c.streams[c.nstreams]
	c.nstreams++
	*s = streamState{StreamStats: StreamStats{ID: id}}
	return s
}

// poll receives one batch from q into d, counts the frames as received
// at clock() read once, after Receive (read before, it would come earlier
// than frames that arrive in between), and releases them; it returns how
// many there were.
func (c *rxCore) poll(q nic.Queue, d []nic.Desc, clock func() int64) int {
	n := q.Receive(d)
	if n == 0 {
		return 0
	}
	now := clock()
	umem := q.UMEM()
	for _, x := range d[:n] {
		c.frame(umem[x.Addr:x.Addr+uint64(x.Len)], now)
	}
	q.Release(d[:n])
	return n
}

// stats returns a copy of the counts.
func (c *rxCore) stats() RxStats {
	s := RxStats{Frames: c.frames, Bytes: c.bytes, NoProbe: c.noProbe, Untracked: c.untracked, Future: c.future, Latency: c.latency}
	for i := range c.streams[:c.nstreams] {
		s.Streams = append(s.Streams, c.streams[i].StreamStats)
	}
	slices.SortFunc(s.Streams, func(a, b StreamStats) int { return cmp.Compare(a.ID, b.ID) })
	return s
}

// probeOf finds the probe in an Ethernet frame: IPv4 (any header length,
// not a fragment), UDP or TCP, the payload as the IP total length and the
// UDP length or TCP data offset bound it. An IPv4-in-IPv4 frame (RFC 2003,
// what an ipip balancer sends its backends) is read inside its one outer
// header. It allocates nothing.
func probeOf(b []byte) (Probe, bool) {
	if len(b) < header.EthernetMinimumSize+header.IPv4MinimumSize ||
		binary.BigEndian.Uint16(b[12:]) != header.EtherTypeIPv4 {
		return Probe{}, false
	}
	return probeOfIP(b[header.EthernetMinimumSize:], true)
}

// probeOfIP is probeOf from the IPv4 header on; with encap, one level of
// IPv4 in IPv4 is looked into.
func probeOfIP(b []byte, encap bool) (Probe, bool) {
	ip := header.IPv4(b)
	if len(ip) < header.IPv4MinimumSize {
		return Probe{}, false
	}
	hl, tl := ip.HeaderLen(), int(ip.TotalLen())
	if ip.Version() != 4 || hl < header.IPv4MinimumSize || tl < hl || tl > len(ip) || ip.IsFragment() {
		return Probe{}, false
	}
	l4 := ip[hl:tl]
	switch ip.Protocol() {
	case header.ProtoIPIP:
		if encap {
			return probeOfIP(l4, false)
		}
	case header.ProtoUDP:
		if len(l4) < header.UDPMinimumSize {
			return Probe{}, false
		}
		ul := int(header.UDP(l4).Length())
		if ul < header.UDPMinimumSize || ul > len(l4) {
			return Probe{}, false
		}
		return ParseProbe(l4[header.UDPMinimumSize:ul])
	case header.ProtoTCP:
		if len(l4) < header.TCPMinimumSize {
			return Probe{}, false
		}
		off := header.TCP(l4).DataOffset()
		if off < header.TCPMinimumSize || off > len(l4) {
			return Probe{}, false
		}
		return ParseProbe(l4[off:])
	}
	return Probe{}, false
}
