// Package health runs the appliance's backend health checks: TCP connect,
// HTTP and HTTPS GET with an expected status (and optional body match), UDP
// request and expected reply, and an external command.
//
// Checks run from the appliance's kernel network stack, off the dataplane;
// nothing here is on the per-packet path. A Checker owns a set of Targets
// (one backend address and its Spec each), probes every target once per
// Interval with a random Jitter so that many backends are not probed in
// lockstep, feeds each result into that target's rise/fall Machine and
// reports transitions through Options.OnChange. The caller rebuilds the
// Maglev table from the eligible backends on each transition.
//
// # State model
//
// Every target starts StateUnknown. Rise consecutive successes make it
// StateUp; Fall consecutive failures make it StateDown. Once Up, Fall
// consecutive failures take it Down; once Down, Rise consecutive successes
// bring it back Up. A single success resets the failure run and vice versa,
// so a flapping backend (fail, ok, fail, ok, ...) never changes state.
//
// Unknown counts as eligible: State.Eligible is true for Unknown and Up and
// false only for Down. A freshly started appliance therefore sends new flows
// to every configured backend until their first Fall failures, instead of
// starting with zero backends while the first Rise probes complete.
//
// # Timing
//
// Probes of one target are Interval apart, each period stretched or shrunk
// by up to Jitter×Interval (uniformly). The first probe of a new target is
// at a uniformly random offset in [0, Interval). A probe is never started
// while the previous probe of the same target is still running, and every
// probe is bounded by Timeout (Validate requires Timeout < Interval).
//
// Detection time: a backend that dies while Up is marked Down after Fall
// failed probes, that is within about Fall×Interval×(1+Jitter) plus up to
// one Timeout for the last probe (with the defaults, 3×2s×1.1 + 1s ≈ 7.6s).
// Recovery likewise takes about Rise×Interval×(1+Jitter), plus the probe's
// own duration.
//
// # Logging
//
// Transitions are logged once each, at Info (to Up) or Warn (to Down), by a
// logger scoped With("component", "health"); individual probes are never
// logged. Status and Snapshot expose per-target counters for "show".
package health
