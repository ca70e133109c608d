package pktgen

import (
	"fmt"

	"github.com/culvert-lb/culvert/nic"
)

// SinkConfig configures an XDPSink. It is a plain value.
type SinkConfig struct {
	Iface string         // interface to attach to; required
	Match Match          // the frames to count and drop
	Mode  nic.AttachMode // AttachAuto (the zero value): native, else generic
}

// XDPSink is an XDP program on one interface that counts the frames
// matching its Match (per CPU: frames and bytes) and drops them, and
// passes everything else to the kernel (see Match for the flooded count).
// It is attached as a bpf_link, never pinned: the kernel detaches it on
// Close or when the process dies. On a veth the generator's frames meet it
// in the peer's transmit path, so its cost lands on the generator's CPU.
//
// Its methods are safe for concurrent use. There is no useful zero value:
// use NewXDPSink.
type XDPSink struct {
	p *xdpProg
}

// NewXDPSink loads the sink and attaches it to cfg.Iface, resolved in the
// calling thread's network namespace.
func NewXDPSink(cfg SinkConfig) (*XDPSink, error) {
	p, err := loadProg("pktgen_sink", cfg.Match, 0)
	if err != nil {
		return nil, fmt.Errorf("sink on %s: %w", cfg.Iface, err)
	}
	if err := p.attach(cfg.Iface, cfg.Mode); err != nil {
		p.close()
		return nil, fmt.Errorf("sink: %w", err)
	}
	return &XDPSink{p: p}, nil
}

// Counts returns the sink's counters, summed over CPUs, since it was
// attached: Packets and Bytes dropped, Flooded passed.
func (s *XDPSink) Counts() (Counts, error) { return s.p.counts() }

// Mode returns the mode the program was attached in: AttachNative or
// AttachGeneric.
func (s *XDPSink) Mode() nic.AttachMode { return s.p.mode }

// Close detaches the program and frees it. Further calls do nothing.
func (s *XDPSink) Close() error { return s.p.close() }
