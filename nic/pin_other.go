//go:build !linux

package nic

// PinThread is not supported off Linux.
func PinThread(cpu int) error { return ErrNotSupported }
