package vrrp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/culvert-lb/culvert/internal/header"
	"golang.org/x/sys/unix"
)

// garpFrameSize is an Ethernet frame carrying an ARP message, padded to the
// 60-byte Ethernet minimum (without FCS).
const garpFrameSize = 60

// arpAnnouncer sends gratuitous ARP requests (RFC 5227 section 3: an ARP
// Announcement; sender and target protocol address both the announced
// address, target hardware address zero) to the broadcast address from
// the interface's MAC address, through an AF_PACKET socket that receives
// nothing (protocol 0).
//
// Announce is for one goroutine (the Router's driver). The socket is
// non-blocking: a full transmit queue fails the frame instead of stalling
// the driver.
type arpAnnouncer struct {
	fd    int
	sa    unix.SockaddrLinklayer
	mac   header.MAC
	frame [garpFrameSize]byte
}

func openAnnouncer(ifi *net.Interface) (*arpAnnouncer, error) {
	if len(ifi.HardwareAddr) != 6 {
		return nil, fmt.Errorf("gratuitous arp on %s: no Ethernet address", ifi.Name)
	}
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("gratuitous arp on %s: packet socket: %w", ifi.Name, err)
	}
	a := &arpAnnouncer{fd: fd, mac: header.MAC(ifi.HardwareAddr)}
	a.sa = unix.SockaddrLinklayer{
		Protocol: htons(unix.ETH_P_ARP),
		Ifindex:  ifi.Index,
		Halen:    6,
	}
	copy(a.sa.Addr[:], header.BroadcastMAC[:])
	eth := header.Ethernet(a.frame[:])
	eth.SetDst(header.BroadcastMAC)
	eth.SetSrc(a.mac)
	eth.SetType(header.EtherTypeARP)
	return a, nil
}

// Announce sends one gratuitous ARP for addr.
func (a *arpAnnouncer) Announce(addr netip.Addr) error {
	if !addr.Is4() {
		return fmt.Errorf("gratuitous arp for %v: %w", addr, ErrAddress)
	}
	ip := addr.As4()
	header.ARP(a.frame[header.EthernetMinimumSize:]).Encode(header.ARPRequest, a.mac, ip, header.MAC{}, ip)
	if err := unix.Sendto(a.fd, a.frame[:], 0, &a.sa); err != nil {
		return fmt.Errorf("gratuitous arp for %v: %w", addr, err)
	}
	return nil
}

func (a *arpAnnouncer) Close() error {
	if a.fd < 0 {
		return errors.New("gratuitous arp: closed twice")
	}
	err := unix.Close(a.fd)
	a.fd = -1
	return err
}

func htons(v uint16) uint16 {
	var b [2]byte
	binary.BigEndian.PutUint16(b[:], v)
	return binary.NativeEndian.Uint16(b[:])
}
