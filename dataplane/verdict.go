package dataplane

// Verdict is what the pipeline decided for one frame.
type Verdict uint8

// Verdicts.
const (
	VerdictDrop Verdict = iota // count the reason and recycle the frame
	VerdictTX                  // rewritten in place: transmit it
	VerdictPass                // not ours: hand it to the kernel's stack
)

func (v Verdict) String() string {
	switch v {
	case VerdictDrop:
		return "drop"
	case VerdictTX:
		return "tx"
	case VerdictPass:
		return "pass"
	}
	return "verdict(?)"
}

// DropReason says why a frame was dropped. Every dropped frame has exactly
// one, counted per worker.
type DropReason uint8

// Drop reasons. Names (String) are stable: they become metric labels.
const (
	DropNone           DropReason = iota
	DropTruncated                 // shorter than its headers say
	DropBadIPVersion              // EtherType IPv4 but version field is not 4
	DropBadIHL                    // IPv4 header length below 20
	DropBadTotalLength            // IPv4 total length below the header or beyond the frame
	DropBadIPChecksum             // IPv4 header checksum does not verify
	DropIPOptions                 // IPv4 options on a packet for a service (not balanced)
	DropFragment                  // IPv4 fragment: no ports to classify it by
	DropBadTCPHeader              // TCP data offset below 20 or beyond the segment
	DropBadUDPHeader              // UDP length below 8 or beyond the datagram
	DropTTLExceeded               // TTL would reach zero in a routed (nat) rewrite
	DropNoFlow                    // not a connection start, and no flow matches
	DropNoService                 // flow's service was removed or changed mode
	DropNoBackend                 // the service has no backend that may take new flows
	DropBackendGone               // the flow's backend was removed
	DropNoNeighbor                // next hop's link-layer address is unknown
	DropTableFull                 // connection table full: new flow refused
	DropPortsExhausted            // no SNAT source port free on any local address
	DropPortInUse                 // every SNAT tuple tried (snatTries) is held by a flow from elsewhere (HA import), or the new flow's tuple is a flow's reply tuple
	DropTooBig                    // encapsulated packet exceeds the MTU and DF is clear
	DropNoHeadroom                // no room in front of the frame to encapsulate
	DropTXFull                    // transmit ring full
	DropNoTXFrame                 // leaves by another link, whose queue had no free frame to copy it into
	NumDropReasons
)

var dropNames = [NumDropReasons]string{
	"none", "truncated", "bad-ip-version", "bad-ihl", "bad-total-length", "bad-ip-checksum",
	"ip-options", "fragment", "bad-tcp-header", "bad-udp-header", "ttl-exceeded",
	"no-flow", "no-service", "no-backend", "backend-gone", "no-neighbor", "table-full",
	"ports-exhausted", "port-in-use", "too-big", "no-headroom", "tx-full", "no-tx-frame",
}

func (r DropReason) String() string {
	if r < NumDropReasons {
		return dropNames[r]
	}
	return "drop-reason(?)"
}

// PassReason says why a frame was handed to the kernel.
type PassReason uint8

// Pass reasons.
const (
	PassNone       PassReason = iota
	PassNotIPv4               // IPv6 (not balanced yet), VLAN-tagged or another EtherType
	PassARP                   // ARP not asking for a VIP
	PassNotOwned              // IPv4 to an address:port no service or NAT flow owns
	PassICMP                  // ICMP that is neither an echo for a VIP nor an error about a flow
	PassOtherProto            // an IPv4 protocol other than TCP, UDP and ICMP
	NumPassReasons
)

var passNames = [NumPassReasons]string{"none", "not-ipv4", "arp", "not-owned", "icmp", "other-proto"}

func (r PassReason) String() string {
	if r < NumPassReasons {
		return passNames[r]
	}
	return "pass-reason(?)"
}
