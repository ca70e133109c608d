// Package peer runs the baselines that `culvert bench` measures Culvert
// against, on the namespace lab (bench/lab), in the same run, in the
// appliance's position, and the helpers that place their work on CPUs.
//
// # The peers
//
//	peer          what it is                                      shape
//	Reflector     the AF_XDP ceiling: the daemon's steering       StartReflector / Stats / Stop
//	              program and nic.XDP queues, a loop shaped
//	              like the dataplane worker's that only
//	              rewrites MACs and transmits
//	XDPForwarder  an in-kernel L2 forwarder (XDP_TX, or          StartXDPForwarder / Stats / Close
//	              bpf_redirect to the server side): DSR
//	              without user space
//	NFTables      the Linux kernel as an L4 balancer without     StartNFTables / Close
//	              IPVS: nftables DNAT spread over the
//	              backends, SNAT, conntrack
//	HAProxy       Debian's haproxy in TCP mode, one thread,      StartHAProxy / Stop
//	              pinned
//	Trafgen       netsniff-ng's trafgen, a kernel packet          RunTrafgen
//	              generator, for comparison with bench/pktgen
//	ConnRate      real TCP clients: connections per second,      RunConnRate
//	              failures by kind, latency percentiles
//
// The Reflector, the XDPForwarder, NFTables and HAProxy take the appliance
// namespace of a lab.Lab: one of them at a time (two XDP programs cannot
// share an interface, and NFTables refuses to start while any XDP program is
// attached there, since the kernel would never see the frames). Trafgen and
// ConnRate run on any lab host, usually the router or the client.
//
// # Placement
//
// On veth pairs the receiver's work runs on the sender's CPU: a veth
// transmit hands the frame straight to its peer, and the peer's receive path
// (its XDP program, an AF_XDP copy, the IP stack) runs in the softirq that
// the sending syscall raises, on the sender's CPU. Measured naively, the
// generator's CPU then carries part of the device under test. ThreadedNAPI
// and PinNAPIThreads move the NAPI poll of a veth that has NAPI (an XDP
// program or GRO on) into kernel threads pinned to a chosen CPU; SetRPS
// steers the backlog of a veth without NAPI (the kernel stack peers) to
// chosen CPUs.
//
// # Requirements
//
// Everything here needs root (namespaces, BPF, nft, sysfs), Linux 6.9 or
// later for the NAPI threads' pids over netlink, and these Debian packages
// for the external peers: nftables (nft), haproxy, netsniff-ng (trafgen),
// and util-linux (taskset). On other systems the functions return
// ErrNotSupported.
package peer
