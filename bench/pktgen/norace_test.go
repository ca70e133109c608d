//go:build !race

package pktgen

const raceEnabled = false
