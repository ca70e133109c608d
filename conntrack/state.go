package conntrack

import (
	"strconv"
	"time"
)

// State is the protocol state of a flow. The zero value StateNone is not a
// valid state for a live flow; Entry.State returns it for a flow that has
// expired or been removed.
type State uint8

const (
	StateNone         State = iota // invalid; dead or removed entry
	StateSynSent                   // TCP: client SYN seen
	StateSynRecv                   // TCP: server SYN-ACK seen (two-way only)
	StateEstablished               // TCP: handshake completed
	StateFinWait                   // TCP: FIN seen from one side
	StateTimeWait                  // TCP: FIN seen from both sides (two-way only)
	StateClose                     // TCP: RST seen
	StateUDPUnreplied              // UDP (and other protocols): only the original direction seen
	StateUDP                       // UDP: reply seen, or any packet of a one-way flow
	StatePersist                   // source-IP persistence template (Proto == ProtoPersist)
	numStates
)

var stateNames = [numStates]string{
	StateNone:         "None",
	StateSynSent:      "SynSent",
	StateSynRecv:      "SynRecv",
	StateEstablished:  "Established",
	StateFinWait:      "FinWait",
	StateTimeWait:     "TimeWait",
	StateClose:        "Close",
	StateUDPUnreplied: "UDPUnreplied",
	StateUDP:          "UDP",
	StatePersist:      "Persist",
}

func (s State) String() string {
	if s < numStates {
		return stateNames[s]
	}
	return "State(" + strconv.Itoa(int(s)) + ")"
}

// Valid reports whether s is a state a live flow can be in.
func (s State) Valid() bool { return s > StateNone && s < numStates }

// Dir is the direction of a packet relative to its flow.
type Dir uint8

const (
	// DirOriginal is client -> VIP, as received: the flow's Orig key.
	DirOriginal Dir = iota
	// DirReply is the return traffic as the appliance receives it (for
	// full NAT, backend -> local NAT address): the flow's Reply key.
	DirReply
)

func (d Dir) String() string {
	switch d {
	case DirOriginal:
		return "Original"
	case DirReply:
		return "Reply"
	}
	return "Dir(" + strconv.Itoa(int(d)) + ")"
}

// TCP flag bits as on the wire (byte 13 of the TCP header, RFC 9293).
const (
	FlagFIN = 0x01
	FlagSYN = 0x02
	FlagRST = 0x04
	FlagACK = 0x10
)

// Timeouts are the idle timeouts per state: a flow expires when it has seen
// no packet for the timeout of its current state. The table keeps
// deadlines at 1 s granularity, rounding up, so a flow lives at least its
// timeout and less than one second more.
//
// A zero field means the default for that field (DefaultTimeouts).
type Timeouts struct {
	SynSent, SynRecv, Established, FinWait, TimeWait, Close, UDPUnreplied, UDP time.Duration
}

// DefaultTimeouts returns IPVS-like timeouts.
//
//	SynSent       60s  IPVS SYN_RECV (the state IPVS enters on the client's SYN), ip_vs_proto_tcp.c tcp_timeouts
//	SynRecv       60s  IPVS SYN_RECV; IPVS stays there when the SYN-ACK passes
//	Established   15m  IPVS ESTABLISHED
//	FinWait      120s  IPVS FIN_WAIT
//	TimeWait     120s  IPVS TIME_WAIT
//	Close         10s  IPVS CLOSE
//	UDPUnreplied  30s  nf_conntrack udp_timeout (IPVS has one UDP state)
//	UDP          300s  IPVS UDP NORMAL, ip_vs_proto_udp.c udp_timeouts
func DefaultTimeouts() Timeouts {
	return Timeouts{
		SynSent:      60 * time.Second,
		SynRecv:      60 * time.Second,
		Established:  15 * time.Minute,
		FinWait:      120 * time.Second,
		TimeWait:     120 * time.Second,
		Close:        10 * time.Second,
		UDPUnreplied: 30 * time.Second,
		UDP:          300 * time.Second,
	}
}

// byState returns the timeouts indexed by state, zero fields defaulted.
// StatePersist has no table entry: its timeout is per flow.
func (to Timeouts) byState() [numStates]time.Duration {
	d := DefaultTimeouts()
	pick := func(v, def time.Duration) time.Duration {
		if v == 0 {
			return def
		}
		return v
	}
	var a [numStates]time.Duration
	a[StateSynSent] = pick(to.SynSent, d.SynSent)
	a[StateSynRecv] = pick(to.SynRecv, d.SynRecv)
	a[StateEstablished] = pick(to.Established, d.Established)
	a[StateFinWait] = pick(to.FinWait, d.FinWait)
	a[StateTimeWait] = pick(to.TimeWait, d.TimeWait)
	a[StateClose] = pick(to.Close, d.Close)
	a[StateUDPUnreplied] = pick(to.UDPUnreplied, d.UDPUnreplied)
	a[StateUDP] = pick(to.UDP, d.UDP)
	return a
}

// Per-flow TCP bits kept in the state word next to the state: which sides
// have sent a FIN, so that FinWait moves to TimeWait only on the second
// side's FIN.
const (
	finOrig  = 1 << 0
	finReply = 1 << 1
)

// tcpNext is the TCP state machine: the state after a packet with flags fl
// travelling in dir, given the state st and FIN bits fb. RST wins over
// SYN, SYN over FIN, FIN over ACK (the order IPVS uses to classify a
// segment).
//
// Two-way (full NAT, both directions pass the appliance):
//
//	SYN (orig)            TimeWait, Close -> SynSent (reopen)
//	SYN+ACK (reply)       SynSent -> SynRecv
//	ACK (orig)            SynRecv -> Established
//	FIN (either)          SynSent, SynRecv, Established -> FinWait
//	FIN (the other side)  FinWait -> TimeWait
//	RST (either)          any -> Close
//
// One-way (DSR, IPIP: only the client's half is seen; IPVS "INPUT_ONLY"):
//
//	SYN                   TimeWait, Close -> SynSent (reopen)
//	ACK                   SynSent -> Established
//	FIN                   SynSent, Established -> FinWait
//	RST                   any -> Close
//
// Every other combination keeps the state (and refreshes the deadline).
func tcpNext(st State, fb uint8, dir Dir, fl uint8, oneWay bool) (State, uint8) {
	switch {
	case fl&FlagRST != 0:
		return StateClose, 0
	case fl&FlagSYN != 0:
		if fl&FlagACK == 0 {
			if dir == DirOriginal && (st == StateTimeWait || st == StateClose) {
				return StateSynSent, 0
			}
			return st, fb
		}
		if dir == DirReply && st == StateSynSent && !oneWay {
			return StateSynRecv, fb
		}
		return st, fb
	case fl&FlagFIN != 0:
		bit := uint8(finOrig)
		if dir == DirReply {
			bit = finReply
		}
		switch st {
		case StateSynSent, StateSynRecv, StateEstablished:
			return StateFinWait, bit
		case StateFinWait:
			fb |= bit
			if !oneWay && fb == finOrig|finReply {
				return StateTimeWait, fb
			}
			return StateFinWait, fb
		}
		return st, fb
	case fl&FlagACK != 0:
		if dir == DirOriginal && (st == StateSynRecv || oneWay && st == StateSynSent) {
			return StateEstablished, fb
		}
	}
	return st, fb
}

// udpNext is the UDP state machine, also used for protocols other than TCP:
// a reply moves UDPUnreplied to UDP; a one-way flow is always UDP.
func udpNext(st State, dir Dir, oneWay bool) State {
	if st == StateUDPUnreplied && (oneWay || dir == DirReply) {
		return StateUDP
	}
	return st
}
