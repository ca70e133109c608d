package health

import "fmt"

// State is a target's health.
type State uint8

// States. The zero State is StateUnknown.
const (
	StateUnknown State = iota // no verdict yet: eligible for new flows
	StateUp                   // Rise consecutive successes
	StateDown                 // Fall consecutive failures: not eligible
	numStates
)

var stateNames = [numStates]string{"unknown", "up", "down"}

// String returns "unknown", "up" or "down".
func (s State) String() string {
	if s < numStates {
		return stateNames[s]
	}
	return fmt.Sprintf("State(%d)", uint8(s))
}

// Eligible reports whether a backend in state s may be chosen for new flows.
// Unknown is eligible, so that a fresh appliance does not start with zero
// backends; only Down is not.
func (s State) Eligible() bool { return s != StateDown }

// Machine is the rise/fall state machine of one target, driven one probe
// result at a time by Observe. The zero value is Unknown with empty runs;
// Rise and Fall below 1 act as 1. A Machine is not safe for concurrent use.
// Observe allocates nothing.
type Machine struct {
	Rise, Fall int // thresholds; set before the first Observe

	state    State
	ok, fail int // consecutive successes / failures; one is always 0
}

// NewMachine returns an Unknown machine with the given thresholds.
func NewMachine(rise, fall int) Machine { return Machine{Rise: rise, Fall: fall} }

// State returns the current state.
func (m *Machine) State() State { return m.state }

// Consecutive returns the current runs of successes and failures; at most
// one of them is non-zero.
func (m *Machine) Consecutive() (ok, fail int) { return m.ok, m.fail }

// Observe records one probe result and returns the state before and after
// it; from != to exactly when this result caused a transition.
func (m *Machine) Observe(healthy bool) (from, to State) {
	from = m.state
	if healthy {
		m.fail = 0
		if m.ok < maxRun {
			m.ok++
		}
		if m.state != StateUp && m.ok >= max(m.Rise, 1) {
			m.state = StateUp
		}
	} else {
		m.ok = 0
		if m.fail < maxRun {
			m.fail++
		}
		if m.state != StateDown && m.fail >= max(m.Fall, 1) {
			m.state = StateDown
		}
	}
	return from, m.state
}

// maxRun caps the run counters so that a target probed forever cannot
// overflow them.
const maxRun = 1 << 30
