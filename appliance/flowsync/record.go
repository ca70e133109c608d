package flowsync

import (
	"encoding/binary"
	"errors"
	"math"
	"net/netip"
	"strconv"
	"time"
)

// Kind says what a Record does to the peer's table.
type Kind uint8

// Record kinds. Names (String) are stable: they appear in logs and tools.
const (
	// KindUpdate installs the flow, or refreshes its state and deadline.
	KindUpdate Kind = iota
	// KindRemove removes the flow: it left the sender's table.
	KindRemove
	numKinds
)

func (k Kind) String() string {
	switch k {
	case KindUpdate:
		return "update"
	case KindRemove:
		return "remove"
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

// Tuple is one direction of a flow as the appliance receives it: the
// conntrack key (conntrack.Key4 today, Key6 later) with netip addresses.
// The zero Tuple (invalid addresses) is the Reply of a flow without one.
type Tuple struct {
	Src, Dst         netip.Addr
	SrcPort, DstPort uint16
	Proto            uint8
}

// Service names a virtual service by value, the same on two appliances
// whose internal service indexes differ.
type Service struct {
	VIP   netip.Addr
	Proto uint8
	Port  uint16 // the service's (first) port
}

// Record is one change of a connection table, as sent to the HA peer. It
// carries everything needed to rebuild a conntrack flow on a peer whose
// internal IDs differ: the service, backend and SNAT local address go by
// value. The zero Record is an Update of an empty flow; it encodes and
// decodes, but no table would import it.
type Record struct {
	Kind Kind

	// Orig is the client -> VIP tuple. Reply is the return tuple the
	// appliance receives (full NAT: backend -> local address and NAT
	// port); zero without one.
	Orig, Reply Tuple

	HasReply bool // full NAT: Reply is indexed as well
	OneWay   bool // DSR/IPIP: only Orig packets are ever seen

	// State is the conntrack.State of the flow (zero with KindRemove).
	State uint8

	// Remaining is the time left until the flow expires without traffic.
	// The wire carries whole milliseconds: Append rounds up, so a live
	// flow stays live on the peer.
	Remaining time.Duration

	Service Service
	Backend netip.AddrPort
	// Local is the SNAT source address of a full-NAT flow; zero otherwise.
	Local netip.Addr
	// Owner is the index of the sender's worker that allocated the NAT
	// port. The importing side keeps it in the flow but, on expiry, gives
	// the port back to whichever of its own pools holds it, since the two
	// boxes may run different numbers of workers.
	Owner uint16
	// PersistTimeout is the timeout, in seconds, of a persistence
	// template (StatePersist).
	PersistTimeout uint32
}

// RecordSize is the size of an encoded Record.
const RecordSize = 152

// Errors returned by Record.Decode.
var (
	ErrRecordShort   = errors.New("flowsync: record shorter than RecordSize")
	ErrRecordInvalid = errors.New("flowsync: invalid record encoding")
)

// Address families on the wire (the family bytes of a record).
const (
	famNone = 0 // the zero netip.Addr: 16 zero bytes
	famIPv4 = 4 // IPv4, carried IPv4-mapped (::ffff:a.b.c.d, RFC 4291 section 2.5.5.2)
	famIPv6 = 6 // IPv6, 16 bytes; the zone is not carried
)

// Record flag bits.
const (
	recHasReply = 1 << 0
	recOneWay   = 1 << 1
	recFlags    = recHasReply | recOneWay
)

// Offsets in an encoded record; see the diagram on Record.Append.
const (
	rKind         = 0
	rFlags        = 1
	rState        = 2
	rServiceProto = 3
	rOwner        = 4
	rServicePort  = 6
	rRemaining    = 8
	rPersist      = 16
	rBackendPort  = 20
	rOrigProto    = 22
	rReplyProto   = 23
	rOrigSport    = 24
	rOrigDport    = 26
	rReplySport   = 28
	rReplyDport   = 30
	rFamilies     = 32 // 7 family bytes, then one reserved zero byte
	rAddrs        = 40 // 7 addresses of 16 bytes, in the order of the families

	numAddrs = 7
)

// Address slots, in wire order.
const (
	slotOrigSrc = iota
	slotOrigDst
	slotReplySrc
	slotReplyDst
	slotVIP
	slotBackend
	slotLocal
)

// maxRemainingMs bounds Remaining on the wire so that it converts back to
// a time.Duration without overflow.
const maxRemainingMs = math.MaxInt64 / int64(time.Millisecond)

// Append appends the RecordSize-byte encoding of r to b and returns the
// extended slice. It allocates only when b lacks the capacity. Fields are
// encoded as they are; only Decode checks them. All integers are big
// endian.
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|     Kind      |   Flags   |O|R|     State     | Service Proto |   0
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|             Owner             |         Service Port          |   4
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                                                               |   8
//	+            Remaining (milliseconds, signed 64-bit)            +
//	|                                                               |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                   Persist Timeout (seconds)                   |  16
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|         Backend Port          |  Orig Proto   |  Reply Proto  |  20
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|         Orig Src Port         |         Orig Dst Port         |  24
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|        Reply Src Port         |        Reply Dst Port         |  28
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	| Fam Orig Src  | Fam Orig Dst  | Fam Reply Src | Fam Reply Dst |  32
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|    Fam VIP    |  Fam Backend  |   Fam Local   |   Reserved    |  36
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                                                               |  40
//	+                 Orig Src Address (128 bits)                   +
//	|                                                               |
//	+                                                               +
//	|                                                               |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                 Orig Dst Address (128 bits)                   |  56
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                 Reply Src Address (128 bits)                  |  72
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                 Reply Dst Address (128 bits)                  |  88
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                    VIP Address (128 bits)                     | 104
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                  Backend Address (128 bits)                   | 120
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                   Local Address (128 bits)                    | 136
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	                                                                  152
//
// Flags: R (bit 0) HasReply, O (bit 1) OneWay; the other bits are zero.
// Each address has a family byte: 0 for no address (16 zero bytes), 4 for
// IPv4 (IPv4-mapped, ::ffff:a.b.c.d), 6 for IPv6. So IPv6 flows need no
// change of format. The reserved byte is zero.
func (r *Record) Append(b []byte) []byte {
	n := len(b)
	b = append(b, make([]byte, RecordSize)...) // does not allocate (the compiler appends zeros in place)
	w := b[n : n+RecordSize]
	w[rKind] = uint8(r.Kind)
	var fl uint8
	if r.HasReply {
		fl |= recHasReply
	}
	if r.OneWay {
		fl |= recOneWay
	}
	w[rFlags] = fl
	w[rState] = r.State
	w[rServiceProto] = r.Service.Proto
	binary.BigEndian.PutUint16(w[rOwner:], r.Owner)
	binary.BigEndian.PutUint16(w[rServicePort:], r.Service.Port)
	binary.BigEndian.PutUint64(w[rRemaining:], uint64(remainingMs(r.Remaining)))
	binary.BigEndian.PutUint32(w[rPersist:], r.PersistTimeout)
	binary.BigEndian.PutUint16(w[rBackendPort:], r.Backend.Port())
	w[rOrigProto] = r.Orig.Proto
	w[rReplyProto] = r.Reply.Proto
	binary.BigEndian.PutUint16(w[rOrigSport:], r.Orig.SrcPort)
	binary.BigEndian.PutUint16(w[rOrigDport:], r.Orig.DstPort)
	binary.BigEndian.PutUint16(w[rReplySport:], r.Reply.SrcPort)
	binary.BigEndian.PutUint16(w[rReplyDport:], r.Reply.DstPort)
	putAddr(w, slotOrigSrc, r.Orig.Src)
	putAddr(w, slotOrigDst, r.Orig.Dst)
	putAddr(w, slotReplySrc, r.Reply.Src)
	putAddr(w, slotReplyDst, r.Reply.Dst)
	putAddr(w, slotVIP, r.Service.VIP)
	putAddr(w, slotBackend, r.Backend.Addr())
	putAddr(w, slotLocal, r.Local)
	return b
}

// Decode sets r from the first RecordSize bytes of b. It accepts only the
// encoding Append produces (known kind and flag bits, family bytes 0, 4 or
// 6 with matching address bytes, a zero reserved byte), so that whatever
// it accepts re-encodes to the same bytes. It never allocates, and leaves
// r unchanged on error.
func (r *Record) Decode(b []byte) error {
	if len(b) < RecordSize {
		return ErrRecordShort
	}
	b = b[:RecordSize]
	if Kind(b[rKind]) >= numKinds || b[rFlags]&^recFlags != 0 || b[rFamilies+numAddrs] != 0 {
		return ErrRecordInvalid
	}
	ms := int64(binary.BigEndian.Uint64(b[rRemaining:]))
	if ms > maxRemainingMs || ms < -maxRemainingMs {
		return ErrRecordInvalid
	}
	var a [numAddrs]netip.Addr
	for i := range a {
		var ok bool
		if a[i], ok = getAddr(b, i); !ok {
			return ErrRecordInvalid
		}
	}
	*r = Record{
		Kind: Kind(b[rKind]),
		Orig: Tuple{
			Src: a[slotOrigSrc], Dst: a[slotOrigDst],
			SrcPort: binary.BigEndian.Uint16(b[rOrigSport:]),
			DstPort: binary.BigEndian.Uint16(b[rOrigDport:]),
			Proto:   b[rOrigProto],
		},
		Reply: Tuple{
			Src: a[slotReplySrc], Dst: a[slotReplyDst],
			SrcPort: binary.BigEndian.Uint16(b[rReplySport:]),
			DstPort: binary.BigEndian.Uint16(b[rReplyDport:]),
			Proto:   b[rReplyProto],
		},
		HasReply:  b[rFlags]&recHasReply != 0,
		OneWay:    b[rFlags]&recOneWay != 0,
		State:     b[rState],
		Remaining: time.Duration(ms) * time.Millisecond,
		Service: Service{
			VIP:   a[slotVIP],
			Proto: b[rServiceProto],
			Port:  binary.BigEndian.Uint16(b[rServicePort:]),
		},
		Backend:        netip.AddrPortFrom(a[slotBackend], binary.BigEndian.Uint16(b[rBackendPort:])),
		Local:          a[slotLocal],
		Owner:          binary.BigEndian.Uint16(b[rOwner:]),
		PersistTimeout: binary.BigEndian.Uint32(b[rPersist:]),
	}
	return nil
}

// remainingMs converts d to whole milliseconds, rounding up (and down to
// maxRemainingMs, for the last 0.8ms of time.Duration's range).
func remainingMs(d time.Duration) int64 {
	ms := int64(d / time.Millisecond)
	if d%time.Millisecond > 0 {
		ms++
	}
	return min(ms, maxRemainingMs)
}

// putAddr writes address slot i of the record w (family byte and 16
// address bytes, which Append has zeroed).
func putAddr(w []byte, i int, a netip.Addr) {
	var fam uint8
	switch {
	case a.Is4():
		fam = famIPv4
	case a.Is6():
		fam = famIPv6
	default:
		return
	}
	w[rFamilies+i] = fam
	a16 := a.As16()
	copy(w[rAddrs+16*i:], a16[:])
}

// getAddr reads address slot i of the record b; ok is false for an
// unknown family or address bytes that do not match it.
func getAddr(b []byte, i int) (netip.Addr, bool) {
	a16 := [16]byte(b[rAddrs+16*i:])
	switch b[rFamilies+i] {
	case famNone:
		return netip.Addr{}, a16 == [16]byte{}
	case famIPv4:
		if [12]byte(a16[:]) != [12]byte{10: 0xff, 11: 0xff} {
			return netip.Addr{}, false
		}
		return netip.AddrFrom4([4]byte(a16[12:])), true
	case famIPv6:
		return netip.AddrFrom16(a16), true
	}
	return netip.Addr{}, false
}
