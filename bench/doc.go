// Package bench holds Culvert's labs and load tools. MemLab, here now, is a
// virtual lab in memory: simulated clients and backends exchange real
// Ethernet frames with the real dataplane through an in-memory queue, so
// the whole forwarding path (nat, dsr, ipip) can be shown and checked
// without privileges. The namespace lab on real interfaces, the AF_XDP
// packet generator and the peer baselines build on it.
package bench
