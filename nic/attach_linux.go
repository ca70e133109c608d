package nic

import (
	"fmt"
	"sync"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
)

// progAttachment is an XDP program loaded from its collection and attached
// to one interface as a bpf_link: what Steering and Decap share. mu
// serialises map updates and Close.
type progAttachment struct {
	mu     sync.Mutex
	iface  string
	mode   AttachMode
	coll   *ebpf.Collection
	prog   *ebpf.Program
	link   link.Link // nil when not attached (tests)
	closed bool
}

// close detaches the program and frees it and its maps; what names it in
// errors. Further calls do nothing.
func (a *progAttachment) close(what string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return nil
	}
	a.closed = true
	var err error
	if a.link != nil {
		err = a.link.Close()
	}
	a.coll.Close()
	if err != nil {
		return fmt.Errorf("%s on %s: detach: %w", what, a.iface, err)
	}
	return nil
}
