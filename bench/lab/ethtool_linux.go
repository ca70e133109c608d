//go:build linux

package lab

import "golang.org/x/sys/unix"

// SetTxChecksumOffload turns TX checksum offload of the named interface, in
// the calling thread's namespace, on or off (`ethtool -K <if> tx on|off`).
//
// Why the lab turns it off: a veth "offloads" the TCP/UDP checksum by not
// computing it at all; the packet crosses the pair marked
// CHECKSUM_PARTIAL and the receiving kernel trusts the mark. An AF_XDP
// forwarder sees only the bytes, with a checksum field holding just the
// pseudo-header sum, patches it incrementally and sends on a frame whose
// mark is gone, which the next kernel then drops as corrupt. With offload
// off the sender writes the full checksum, as a real NIC's peer would see
// it. (Turning it off also turns off TSO, which depends on it, so the
// appliance sees MTU-sized segments.)
func SetTxChecksumOffload(ifname string, on bool) error {
	_, err := ethtool(ifname, unix.ETHTOOL_STXCSUM, b2u(on))
	return err
}

// TxChecksumOffload reports whether TX checksum offload is on for the named
// interface in the calling thread's namespace.
func TxChecksumOffload(ifname string) (bool, error) {
	v, err := ethtool(ifname, unix.ETHTOOL_GTXCSUM, 0)
	return v != 0, err
}

// SetGRO turns generic receive offload of the named interface, in the
// calling thread's namespace, on or off (`ethtool -K <if> gro on|off`).
//
// The lab turns it on for the peer of every appliance interface: a frame
// that XDP sends with XDP_TX or XDP_REDIRECT into a veth is dropped unless
// the peer has an XDP program attached or GRO on (which gives the peer the
// NAPI context that receives such frames).
func SetGRO(ifname string, on bool) error {
	_, err := ethtool(ifname, unix.ETHTOOL_SGRO, b2u(on))
	return err
}

// GRO reports whether generic receive offload is on for the named interface
// in the calling thread's namespace.
func GRO(ifname string) (bool, error) {
	v, err := ethtool(ifname, unix.ETHTOOL_GGRO, 0)
	return v != 0, err
}

func b2u(b bool) uint32 {
	if b {
		return 1
	}
	return 0
}
