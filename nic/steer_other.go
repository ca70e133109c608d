//go:build !linux

package nic

// Steering is the steering XDP program on one interface. XDP exists only
// on Linux: elsewhere every method returns ErrNotSupported.
type Steering struct{}

// NewSteering returns ErrNotSupported.
func NewSteering(iface string, queues int) (*Steering, error) { return nil, ErrNotSupported }

// Mode returns AttachAuto.
func (s *Steering) Mode() AttachMode { return AttachAuto }

// SetSocket returns ErrNotSupported.
func (s *Steering) SetSocket(queue int, fd int) error { return ErrNotSupported }

// Update returns ErrNotSupported.
func (s *Steering) Update(vips [][4]byte, services []SteerService, locals [][4]byte) error {
	return ErrNotSupported
}

// Stats returns ErrNotSupported.
func (s *Steering) Stats() (SteerStats, error) { return SteerStats{}, ErrNotSupported }

// Close returns nil.
func (s *Steering) Close() error { return nil }
