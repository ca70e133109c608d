module github.com/culvert-lb/culvert

go 1.26

require (
	github.com/cilium/ebpf v0.22.0
	github.com/google/gopacket v1.1.19
	github.com/spf13/pflag v1.0.10
	github.com/vishvananda/netlink v1.1.0
	github.com/vishvananda/netns v0.0.0-20191106174202-0a2b9b5464df
	go.yaml.in/yaml/v3 v3.0.4
	golang.org/x/sys v0.43.0
)

require github.com/asavie/xdp v0.3.3
