package flowsync

import (
	"net"
	"syscall"
)

// setReadBuffer asks for an n-byte socket receive buffer and returns the
// size the kernel granted (Linux reports twice the size asked, its
// bookkeeping included). SO_RCVBUFFORCE goes past net.core.rmem_max when
// the process has CAP_NET_ADMIN, as the appliance does; otherwise
// SO_RCVBUF is capped there.
func setReadBuffer(c *net.UDPConn, n int) (int, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return 0, err
	}
	var got int
	var serr error
	err = rc.Control(func(fd uintptr) {
		if syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUFFORCE, n) != nil {
			if serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, n); serr != nil {
				return
			}
		}
		got, serr = syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF)
	})
	if err != nil {
		return 0, err
	}
	return got, serr
}
