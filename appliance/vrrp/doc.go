// Package vrrp implements VRRP version 3 (RFC 5798) for IPv4: the
// advertisement codec, the virtual router state machine, the socket, and a
// runner that drives groups on a Linux interface.
//
// # State machine
//
// A Node opens no socket, starts no goroutine and reads no clock. It is
// driven by the caller: Start, Shutdown, Advert for each received
// advertisement that passed Parse, SetPriority for interface or health
// tracking, and Tick at or after NextDeadline. Every call takes the current
// time and returns Actions (SendAdvert, BecomeMaster, BecomeBackup,
// BecomeInitialize) for the caller to carry out in order. This keeps the
// protocol testable one step at a time with a manual clock and an in-memory
// link.
//
// Timers follow RFC 5798 section 6.1, computed in centiseconds as the RFC
// states them: Skew_Time = ((256 - Priority) * Master_Adver_Interval) / 256
// and Master_Down_Interval = 3 * Master_Adver_Interval + Skew_Time.
// PreemptDelay is an extension (keepalived's preempt_delay), described on
// Config.
//
// # Transport
//
// Conn (Linux only; elsewhere ErrNotSupported) is a raw IPv4 socket for
// protocol 112 bound to one interface, sending with TTL 255 to 224.0.0.18
// or, for networks without multicast, to each of a list of unicast peers
// (keepalived's unicast_peer). It reads whole IPv4 packets, so the TTL,
// source and destination that the checks and the checksum need come from
// the header.
//
// # Router
//
// A Router runs one or more groups (one Node per VRID) on one interface over
// one Conn:
//
//	reader goroutine          driver goroutine                 caller
//	Conn.Read -> checks  --->  Node.Advert / Tick / SetPriority  ---> onTransition(vrid, from, to)
//	(rejects counted,          Conn.Send (adverts)
//	 atomics, no locks)        gratuitous ARP (AF_PACKET)
//	link watcher (rtnetlink) --> tracked state --+
//	SetTracked, SetAddrs -----------------------+
//
// The driver owns every Node and sleeps on a single timer set to the
// earliest NextDeadline (monotonic clock, no polling). Tracking follows
// keepalived: tracked interfaces and caller-reported conditions lower the
// priority by their weight, or with weight 0 put the group in fault
// (Shutdown, held in Initialize until they recover). Every received packet
// that is not delivered is counted under a RejectReason; Snapshot reads the
// counters and states for `culvert show vrrp`.
package vrrp
