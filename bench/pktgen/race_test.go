//go:build race

package pktgen

// raceEnabled: the race detector slows every memory access several times
// over, so timing tests skip their rate and latency assertions.
const raceEnabled = true
