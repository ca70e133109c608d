//go:build linux

package lab

import (
	"fmt"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The ethtool ioctl (SIOCETHTOOL), the interface the ethtool program used
// before its netlink one, for the four boolean settings the lab needs. Each
// call works on the interface of that name in the calling thread's
// namespace: run it inside Host.Do.

// ethtoolValue is struct ethtool_value from <linux/ethtool.h>.
type ethtoolValue struct {
	cmd  uint32
	data uint32
}

// ifreqData is struct ifreq with the ifr_data member of its union: 16
// bytes of name, then a pointer, padded to the union's 24 bytes.
type ifreqData struct {
	name [unix.IFNAMSIZ]byte
	data unsafe.Pointer
	_    [24 - unsafe.Sizeof(unsafe.Pointer(nil))]byte
}

// ethtool issues one ETHTOOL_G*/ETHTOOL_S* value command and returns the
// value the kernel left in the buffer.
func ethtool(ifname string, cmd, data uint32) (uint32, error) {
	if len(ifname) == 0 || len(ifname) >= unix.IFNAMSIZ {
		return 0, fmt.Errorf("ethtool %q: bad interface name", ifname)
	}
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return 0, fmt.Errorf("ethtool %s: socket: %w", ifname, err)
	}
	defer unix.Close(fd)
	v := &ethtoolValue{cmd: cmd, data: data}
	var ifr ifreqData
	copy(ifr.name[:], ifname)
	ifr.data = unsafe.Pointer(v)
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.SIOCETHTOOL, uintptr(unsafe.Pointer(&ifr)))
	runtime.KeepAlive(v)
	if errno != 0 {
		return 0, fmt.Errorf("ethtool %s: command %#x: %w", ifname, cmd, errno)
	}
	return v.data, nil
}
