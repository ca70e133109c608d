package header

import (
	"encoding/binary"
	"testing"
)

// FuzzIPv4 checks that Validate never panics, that a packet it accepts can
// be read through every accessor, and that an address rewrite keeps the
// header checksum equal to a full recompute.
func FuzzIPv4(f *testing.F) {
	f.Add(tcp4([4]byte{198, 18, 0, 1}, [4]byte{198, 18, 0, 2}, 1234, 80, []byte("GET /")))
	f.Add(udp4([4]byte{198, 18, 0, 1}, [4]byte{198, 18, 0, 2}, 53, 53, []byte("q")))
	f.Add([]byte{0x45, 0, 0, 20})
	f.Fuzz(func(t *testing.T, b []byte) {
		ip := IPv4(b)
		if ip.Validate() != IPv4OK {
			return
		}
		_ = ip.Payload()
		_, _, _ = ip.IsFragment(), ip.FragmentOffset(), ip.DF()
		ip.SetDst([4]byte{198, 19, 1, 2})
		ip.SetSrc([4]byte{198, 18, 9, 9})
		if ip.TTL() > 1 {
			ip.DecTTL()
		}
		if !ip.IsChecksumValid() {
			t.Fatalf("checksum does not verify after rewrite: % x", []byte(ip))
		}
	})
}

// FuzzL4Rewrite rewrites addresses and ports of arbitrary TCP/UDP payloads
// and checks that the patched checksum verifies like a full recompute.
func FuzzL4Rewrite(f *testing.F) {
	f.Add([]byte("hello"), uint16(1), uint16(2), uint32(0xc6120001), true)
	f.Add([]byte{}, uint16(0xffff), uint16(0), uint32(0xc6130000), false)
	f.Fuzz(func(t *testing.T, payload []byte, sp, dp uint16, a uint32, isTCP bool) {
		if len(payload) > 1400 {
			return
		}
		var pkt []byte
		if isTCP {
			pkt = tcp4([4]byte{198, 18, 0, 1}, [4]byte{198, 18, 0, 2}, 1000, 80, payload)
		} else {
			pkt = udp4([4]byte{198, 18, 0, 1}, [4]byte{198, 18, 0, 2}, 1000, 80, payload)
		}
		var na [4]byte
		binary.BigEndian.PutUint32(na[:], a)
		ip := IPv4(pkt)
		od := ip.Dst()
		ip.SetDst(na)
		if isTCP {
			tcp := TCP(pkt[20:])
			tcp.UpdateChecksumAddr4(od, na)
			tcp.SetSrcPort(sp)
			tcp.SetDstPort(dp)
		} else {
			udp := UDP(pkt[20:])
			udp.UpdateChecksumAddr4(od, na)
			udp.SetSrcPort(sp)
			udp.SetDstPort(dp)
		}
		if !ip.IsChecksumValid() || !l4Verifies(pkt) {
			t.Fatalf("checksums do not verify after rewrite")
		}
	})
}
