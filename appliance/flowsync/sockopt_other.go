//go:build !linux

package flowsync

import "net"

// setReadBuffer asks for an n-byte socket receive buffer; the size
// granted is not known here, so it reports n.
func setReadBuffer(c *net.UDPConn, n int) (int, error) {
	return n, c.SetReadBuffer(n)
}
