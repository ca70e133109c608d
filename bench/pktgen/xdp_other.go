//go:build !linux

package pktgen

import "github.com/culvert-lb/culvert/nic"

// xdpProg stands for the XDP programs, which need Linux: loadProg returns
// nic.ErrNotSupported, so XDPSink and Receiver cannot be made.
type xdpProg struct{ mode nic.AttachMode }

func loadProg(name string, m Match, queues int) (*xdpProg, error) { return nil, nic.ErrNotSupported }

func (p *xdpProg) attach(iface string, mode nic.AttachMode) error { return nic.ErrNotSupported }
func (p *xdpProg) setSocket(queue, fd int) error                  { return nic.ErrNotSupported }
func (p *xdpProg) counts() (Counts, error)                        { return Counts{}, nic.ErrNotSupported }
func (p *xdpProg) close() error                                   { return nil }

func openQueue(cfg nic.XDPConfig) (*nic.XDP, error) { return nil, nic.ErrNotSupported }
