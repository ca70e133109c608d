package vrrp

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"slices"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"
)

// linkWatch follows the link state of named interfaces through rtnetlink
// (RTNLGRP_LINK: RTM_NEWLINK and RTM_DELLINK carry the interface flags), so
// a change is seen as it happens rather than at the next poll. A link is up
// when both IFF_UP and IFF_RUNNING are set (administratively up, carrier
// and operational state up); a deleted link is down. If the kernel drops
// events (ENOBUFS, the socket buffer overran) every watched link is read
// again with SIOCGIFFLAGS.
//
// Both sockets live in the network namespace of the thread that opened
// them, which is how a Router built inside a namespace watches that
// namespace's links. watch runs in one goroutine; Close unblocks it.
type linkWatch struct {
	f      *os.File
	rc     syscall.RawConn
	ioctl  int // AF_INET datagram socket for SIOCGIFFLAGS
	names  []string
	closed atomic.Bool
}

func openLinkWatch(names []string) (*linkWatch, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("link watch: netlink socket: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Groups: unix.RTMGRP_LINK}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("link watch: bind RTMGRP_LINK: %w", err)
	}
	ioctl, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("link watch: ioctl socket: %w", err)
	}
	f := os.NewFile(uintptr(fd), "rtnetlink")
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		unix.Close(ioctl)
		return nil, fmt.Errorf("link watch: %w", err)
	}
	return &linkWatch{f: f, rc: rc, ioctl: ioctl, names: slices.Clone(names)}, nil
}

// state reads name's link state now. A missing interface is down.
func (w *linkWatch) state(name string) (bool, error) {
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return false, fmt.Errorf("link %q: %w", name, err)
	}
	if err := unix.IoctlIfreq(w.ioctl, unix.SIOCGIFFLAGS, ifr); err != nil {
		if errors.Is(err, unix.ENODEV) {
			return false, nil
		}
		return false, fmt.Errorf("link %s: SIOCGIFFLAGS: %w", name, err)
	}
	const want = unix.IFF_UP | unix.IFF_RUNNING
	return ifr.Uint16()&want == want, nil
}

// resync reports every watched link's current state.
func (w *linkWatch) resync(report func(name string, up bool)) error {
	var errs []error
	for _, n := range w.names {
		up, err := w.state(n)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		report(n, up)
	}
	return errors.Join(errs...)
}

func (w *linkWatch) watch(report func(name string, up bool)) error {
	buf := make([]byte, 1<<16)
	var n int
	var rerr error
	read := func(fd uintptr) bool {
		n, rerr = unix.Read(int(fd), buf)
		return rerr != unix.EAGAIN
	}
	for {
		err := w.rc.Read(read)
		if err == nil {
			err = rerr
		}
		switch {
		case w.closed.Load():
			return nil
		case errors.Is(err, unix.ENOBUFS):
			if err := w.resync(report); err != nil {
				return err
			}
			continue
		case err != nil:
			return fmt.Errorf("link watch: %w", err)
		}
		msgs, err := syscall.ParseNetlinkMessage(buf[:n])
		if err != nil {
			continue // a malformed batch: skip it, the next event corrects
		}
		for i := range msgs {
			if name, up, ok := linkEvent(&msgs[i]); ok && slices.Contains(w.names, name) {
				report(name, up)
			}
		}
	}
}

// linkEvent decodes an RTM_NEWLINK or RTM_DELLINK message: the interface
// name and whether the link is up.
func linkEvent(m *syscall.NetlinkMessage) (name string, up, ok bool) {
	t := m.Header.Type
	if (t != unix.RTM_NEWLINK && t != unix.RTM_DELLINK) || len(m.Data) < unix.SizeofIfInfomsg {
		return "", false, false
	}
	flags := binary.NativeEndian.Uint32(m.Data[8:12]) // struct ifinfomsg: family, pad, type, index, flags, change
	attrs, err := syscall.ParseNetlinkRouteAttr(m)
	if err != nil {
		return "", false, false
	}
	for _, a := range attrs {
		if a.Attr.Type == unix.IFLA_IFNAME {
			name = string(bytes.TrimRight(a.Value, "\x00"))
		}
	}
	const want = unix.IFF_UP | unix.IFF_RUNNING
	return name, t == unix.RTM_NEWLINK && flags&want == want, name != ""
}

func (w *linkWatch) Close() error {
	if w.closed.Swap(true) {
		return nil
	}
	unix.Close(w.ioctl)
	return w.f.Close()
}
