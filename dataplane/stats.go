package dataplane

import "sync/atomic"

// Counter indices into a worker's counter block.
const (
	cRX = iota
	cTX
	cRXBytes
	cTXBytes
	cNewFlows
	cARPReplies
	cEchoReplies
	cICMPErrors
	cFragNeeded
	cWaitErrors
	cCrossLink
	cPortClashes
	cDropBase
	cPassBase = cDropBase + int(NumDropReasons)
	nCounters = cPassBase + int(NumPassReasons)
)

// counters is a worker's published counter block. The worker is its only
// writer (a plain load and store per changed counter per batch, no atomic
// read-modify-write); anyone may read it. The padding keeps two workers'
// blocks off each other's cache lines.
type counters struct {
	_ [64]byte
	v [nCounters]atomic.Uint64
	_ [64]byte
}

// Stats is a snapshot of dataplane counters, summed over workers or for one.
type Stats struct {
	RX, TX, Pass, Drop uint64 // frames
	RXBytes, TXBytes   uint64
	NewFlows           uint64 // flows created (persistence templates not counted)
	ARPReplies         uint64 // ARP requests for VIPs answered
	EchoReplies        uint64 // ICMP echo requests to VIPs answered
	ICMPErrors         uint64 // ICMP errors about tracked flows forwarded
	FragNeeded         uint64 // fragmentation-needed errors generated (ipip)
	WaitErrors         uint64 // failed sleeps on the queue (the worker backs off)
	CrossLink          uint64 // frames sent out of another link than they came in on, each a copy (in TX)
	PortClashes        uint64 // SNAT ports passed over because a flow from elsewhere (HA import) held the tuple
	Drops              [NumDropReasons]uint64
	Passes             [NumPassReasons]uint64
}

func (c *counters) snapshot() Stats {
	var s Stats
	s.RX = c.v[cRX].Load()
	s.TX = c.v[cTX].Load()
	s.RXBytes = c.v[cRXBytes].Load()
	s.TXBytes = c.v[cTXBytes].Load()
	s.NewFlows = c.v[cNewFlows].Load()
	s.ARPReplies = c.v[cARPReplies].Load()
	s.EchoReplies = c.v[cEchoReplies].Load()
	s.ICMPErrors = c.v[cICMPErrors].Load()
	s.FragNeeded = c.v[cFragNeeded].Load()
	s.WaitErrors = c.v[cWaitErrors].Load()
	s.CrossLink = c.v[cCrossLink].Load()
	s.PortClashes = c.v[cPortClashes].Load()
	// Drop and Pass are the sums of their reasons, summed here rather
	// than counted twice per frame.
	for i := range s.Drops {
		s.Drops[i] = c.v[cDropBase+i].Load()
		s.Drop += s.Drops[i]
	}
	for i := range s.Passes {
		s.Passes[i] = c.v[cPassBase+i].Load()
		s.Pass += s.Passes[i]
	}
	return s
}

// Add adds o to s.
func (s *Stats) Add(o Stats) {
	s.RX += o.RX
	s.TX += o.TX
	s.Pass += o.Pass
	s.Drop += o.Drop
	s.RXBytes += o.RXBytes
	s.TXBytes += o.TXBytes
	s.NewFlows += o.NewFlows
	s.ARPReplies += o.ARPReplies
	s.EchoReplies += o.EchoReplies
	s.ICMPErrors += o.ICMPErrors
	s.FragNeeded += o.FragNeeded
	s.WaitErrors += o.WaitErrors
	s.CrossLink += o.CrossLink
	s.PortClashes += o.PortClashes
	for i := range s.Drops {
		s.Drops[i] += o.Drops[i]
	}
	for i := range s.Passes {
		s.Passes[i] += o.Passes[i]
	}
}

// ServiceStats are the counters of one service, summed over workers.
type ServiceStats struct {
	Packets  uint64 // frames of its flows transmitted, both directions in nat
	Bytes    uint64 // their bytes as transmitted (after rewrite or encapsulation)
	NewFlows uint64 // flows created (persistence templates not counted)
}

// BackendStats are the counters of one backend, summed over workers, and
// its live flow count.
type BackendStats struct {
	Packets  uint64 // frames of its flows transmitted, both directions in nat
	Bytes    uint64 // their bytes as transmitted (after rewrite or encapsulation)
	NewFlows uint64 // flows created toward it
	Active   int64  // flows in the connection table that point at it
}

// noTag marks a transmitted frame that belongs to no flow's traffic (ARP
// and echo replies, ICMP errors, fragmentation-needed answers).
const noTag = ^uint32(0)

// flowTag names the service and backend whose flow a transmitted frame
// belongs to; svc is noTag for frames of no flow.
type flowTag struct{ svc, be uint32 }

// flowAcc is a worker's private count for one service or backend during a
// Poll.
type flowAcc struct{ packets, bytes, newFlows uint64 }

// flowCounter is a worker's published count for one service or backend.
// The worker is its only writer (a load and a store per Poll that touched
// it); anyone may read it.
type flowCounter struct{ packets, bytes, newFlows atomic.Uint64 }

// flowCounts is a worker's per-ID accounting for services or backends:
// acc collects a Poll's counts, dirty lists the IDs it touched (each once),
// pub holds the published totals. acc and pub are as long as the ID space
// (Options.MaxServices or MaxBackends); dirty has room for every frame of a
// Poll, so appending to it never allocates.
type flowCounts struct {
	acc   []flowAcc
	dirty []uint32
	pub   []flowCounter
}

func newFlowCounts(ids, perPoll int) flowCounts {
	return flowCounts{acc: make([]flowAcc, ids), dirty: make([]uint32, 0, perPoll), pub: make([]flowCounter, ids)}
}

// touch returns id's accumulator, listing id as dirty on its first use in
// the Poll; nil when id is out of range (a flow imported from an HA peer
// with a larger configuration).
func (c *flowCounts) touch(id uint32) *flowAcc {
	if int(id) >= len(c.acc) {
		return nil
	}
	a := &c.acc[id]
	if *a == (flowAcc{}) {
		c.dirty = append(c.dirty, id)
	}
	return a
}

// publish adds the Poll's counts to the published ones and clears them.
func (c *flowCounts) publish() {
	for _, id := range c.dirty {
		a, p := &c.acc[id], &c.pub[id]
		if a.packets != 0 {
			p.packets.Store(p.packets.Load() + a.packets)
			p.bytes.Store(p.bytes.Load() + a.bytes)
		}
		if a.newFlows != 0 {
			p.newFlows.Store(p.newFlows.Load() + a.newFlows)
		}
		*a = flowAcc{}
	}
	c.dirty = c.dirty[:0]
}
