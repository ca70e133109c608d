package vrrp

import "fmt"

// RejectReason says why a received packet was not handed to a Node. The
// Router counts every received packet that it does not deliver under
// exactly one reason; RejectNone means delivered.
type RejectReason uint8

// Reject reasons, in the order the Router checks them. Names (String) are
// stable: they become metric labels and `culvert show vrrp` columns.
const (
	RejectNone         RejectReason = iota
	RejectIPHeader                  // IPv4 header malformed, not protocol 112, or the datagram was cut short by the receive buffer
	RejectTTL                       // IP TTL is not 255 (RFC 5798 section 7.1): sent from off-link or forged
	RejectAddress                   // source or destination is not IPv4 (only from a caller of Parse; never off the wire)
	RejectShort                     // VRRP message shorter than its 8-byte fixed part
	RejectVersion                   // version is not 3
	RejectType                      // type is not 1 (advertisement)
	RejectLength                    // length does not match the address count
	RejectChecksum                  // checksum (with the IPv4 pseudo-header) does not verify
	RejectVRIDZero                  // virtual router id 0
	RejectInterval                  // Max Adver Int is 0
	RejectUnknownVRID               // a well-formed advertisement for a VRID this Router does not run
	RejectOwn                       // carries this Router's own address as source: looped back or forged
	RejectAddrMismatch              // address list differs from the group's and the sender is not the owner (GroupConfig.CheckAddrs)
	NumRejectReasons
)

var rejectNames = [NumRejectReasons]string{
	"none", "ip-header", "ttl", "not-ipv4", "short", "version", "type", "length",
	"checksum", "vrid-zero", "interval", "unknown-vrid", "own", "addr-mismatch",
}

// String returns the reason's stable name.
func (r RejectReason) String() string {
	if r < NumRejectReasons {
		return rejectNames[r]
	}
	return fmt.Sprintf("RejectReason(%d)", uint8(r))
}
