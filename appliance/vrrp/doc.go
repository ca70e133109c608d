// Package vrrp implements VRRP version 3 (RFC 5798) for IPv4: the
// advertisement codec and the virtual router state machine.
//
// Nothing here opens a socket, starts a goroutine or reads the clock. A Node
// is driven by the caller: Start, Shutdown, Advert for each received
// advertisement that passed Parse, SetPriority for interface or health
// tracking, and Tick at or after NextDeadline. Every call takes the current
// time and returns Actions (SendAdvert, BecomeMaster, BecomeBackup,
// BecomeInitialize) for the caller to carry out in order. This keeps the
// protocol testable one step at a time with a manual clock and an in-memory
// link, and leaves transport (multicast to 224.0.0.18 or keepalived-style
// unicast peers, both with TTL 255) to the caller.
//
// Timers follow RFC 5798 section 6.1, computed in centiseconds as the RFC
// states them: Skew_Time = ((256 - Priority) * Master_Adver_Interval) / 256
// and Master_Down_Interval = 3 * Master_Adver_Interval + Skew_Time.
// PreemptDelay is an extension (keepalived's preempt_delay), described on
// Config.
package vrrp
