package dataplane

import "sync/atomic"

// Counter indices into a worker's counter block.
const (
	cRX = iota
	cTX
	cPass
	cDrop
	cRXBytes
	cTXBytes
	cNewFlows
	cARPReplies
	cEchoReplies
	cICMPErrors
	cFragNeeded
	cWaitErrors
	cCrossLink
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
	Drops              [NumDropReasons]uint64
	Passes             [NumPassReasons]uint64
}

func (c *counters) snapshot() Stats {
	var s Stats
	s.RX = c.v[cRX].Load()
	s.TX = c.v[cTX].Load()
	s.Pass = c.v[cPass].Load()
	s.Drop = c.v[cDrop].Load()
	s.RXBytes = c.v[cRXBytes].Load()
	s.TXBytes = c.v[cTXBytes].Load()
	s.NewFlows = c.v[cNewFlows].Load()
	s.ARPReplies = c.v[cARPReplies].Load()
	s.EchoReplies = c.v[cEchoReplies].Load()
	s.ICMPErrors = c.v[cICMPErrors].Load()
	s.FragNeeded = c.v[cFragNeeded].Load()
	s.WaitErrors = c.v[cWaitErrors].Load()
	s.CrossLink = c.v[cCrossLink].Load()
	for i := range s.Drops {
		s.Drops[i] = c.v[cDropBase+i].Load()
	}
	for i := range s.Passes {
		s.Passes[i] = c.v[cPassBase+i].Load()
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
	for i := range s.Drops {
		s.Drops[i] += o.Drops[i]
	}
	for i := range s.Passes {
		s.Passes[i] += o.Passes[i]
	}
}
