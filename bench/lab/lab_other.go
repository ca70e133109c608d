//go:build !linux

package lab

import (
	"context"
	"net"
	"os/exec"
)

// Up returns ErrNotSupported: labs need Linux network namespaces.
func Up(ctx context.Context, opt Options) (*Lab, error) {
	if _, err := opt.normalize(); err != nil {
		return nil, err
	}
	return nil, ErrNotSupported
}

// Down does nothing: no lab can exist.
func (l *Lab) Down() error { return nil }

// Cleanup returns ErrNotSupported.
func Cleanup(prefix string) error { return ErrNotSupported }

// Do returns ErrNotSupported.
func (h *Host) Do(fn func() error) error { return ErrNotSupported }

// Listen returns ErrNotSupported.
func (h *Host) Listen(network, addr string) (net.Listener, error) { return nil, ErrNotSupported }

// ListenPacket returns ErrNotSupported.
func (h *Host) ListenPacket(network, addr string) (net.PacketConn, error) {
	return nil, ErrNotSupported
}

// Dial returns ErrNotSupported.
func (h *Host) Dial(network, addr string) (net.Conn, error) { return nil, ErrNotSupported }

// DialContext returns ErrNotSupported.
func (h *Host) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	return nil, ErrNotSupported
}

// Sysctl returns ErrNotSupported.
func (h *Host) Sysctl(key string) (string, error) { return "", ErrNotSupported }

// SetSysctl returns ErrNotSupported.
func (h *Host) SetSysctl(key, value string) error { return ErrNotSupported }

// Command returns a command whose Start fails with ErrNotSupported.
func (h *Host) Command(name string, arg ...string) *exec.Cmd {
	cmd := exec.Command(name, arg...)
	cmd.Err = ErrNotSupported
	return cmd
}

// CommandContext returns a command whose Start fails with ErrNotSupported.
func (h *Host) CommandContext(ctx context.Context, name string, arg ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, name, arg...)
	cmd.Err = ErrNotSupported
	return cmd
}

// ServeUDPEcho returns ErrNotSupported.
func (h *Host) ServeUDPEcho(addr, name string) (stop func(), err error) {
	return nil, ErrNotSupported
}

// SetTxChecksumOffload returns ErrNotSupported.
func SetTxChecksumOffload(ifname string, on bool) error { return ErrNotSupported }

// TxChecksumOffload returns ErrNotSupported.
func TxChecksumOffload(ifname string) (bool, error) { return false, ErrNotSupported }

// SetGRO returns ErrNotSupported.
func SetGRO(ifname string, on bool) error { return ErrNotSupported }

// GRO returns ErrNotSupported.
func GRO(ifname string) (bool, error) { return false, ErrNotSupported }

// XDPAttached needs linux.
func (h *Host) XDPAttached(ifname string) (bool, error) { return false, ErrNotSupported }
