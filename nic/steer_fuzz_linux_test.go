//go:build linux

package nic

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/culvert-lb/culvert/internal/packettest"
)

// The fuzz targets run the programs in the kernel on arbitrary frames and
// compare what they do with a plain Go model of the decision tables in
// steer.go and decap.go. The verifier already proves the programs cannot
// read out of bounds; these prove they decide as documented. They need
// root, like every test that loads a program.

// steerModel is the steering decision table: whether the frame is the
// dataplane's under the test configuration (steerVIPs, steerSvcs,
// steerLocals).
func steerModel(f []byte) bool {
	be := binary.BigEndian
	in := func(set [][4]byte, a []byte) bool {
		for _, x := range set {
			if bytes.Equal(x[:], a) {
				return true
			}
		}
		return false
	}
	if len(f) < 14 {
		return false
	}
	switch be.Uint16(f[12:]) {
	case 0x0806:
		a := f[14:]
		if len(a) < 28 || be.Uint16(a[0:]) != 1 || be.Uint16(a[2:]) != 0x0800 || a[4] != 6 || a[5] != 4 || be.Uint16(a[6:]) != 1 {
			return false
		}
		return in(steerVIPs, a[24:28]) || in(steerLocals, a[24:28])
	case 0x0800:
	default:
		return false
	}
	ip := f[14:]
	if len(ip) < 20 || ip[0]>>4 != 4 || ip[0]&0x0f < 5 {
		return false
	}
	dst := ip[16:20]
	switch {
	case in(steerLocals, dst):
		return true
	case be.Uint16(ip[6:])&0x1fff != 0, ip[9] == 1:
		return in(steerVIPs, dst)
	case ip[9] == 6 || ip[9] == 17:
		ihl := int(ip[0]&0x0f) * 4
		if len(ip) < ihl+4 {
			return in(steerVIPs, dst)
		}
		for _, s := range steerSvcs {
			if bytes.Equal(s.Addr[:], dst) && s.Port == be.Uint16(ip[ihl+2:]) && s.Proto == ip[9] {
				return true
			}
		}
	}
	return false
}

// decapModel is the decapsulation decision table for the addresses of
// decapLoaded: the frame the kernel should get.
func decapModel(f []byte) []byte {
	be := binary.BigEndian
	if len(f) < 14+20 || be.Uint16(f[12:]) != 0x0800 {
		return f
	}
	ip := f[14:]
	ihl := int(ip[0]&0x0f) * 4
	if ip[0]>>4 != 4 || ihl < 20 || ip[9] != 4 || be.Uint16(ip[6:])&0x3fff != 0 || len(ip) < ihl+20 || ip[ihl]>>4 != 4 {
		return f
	}
	if !bytes.Equal(ip[16:20], []byte{198, 18, 0, 1}) && !bytes.Equal(ip[16:20], []byte{198, 18, 0, 4}) {
		return f
	}
	return append(append([]byte(nil), f[:14]...), ip[ihl:]...)
}

func steerFuzzSeeds(f *testing.F) {
	for _, fx := range packettest.Fixtures() {
		f.Add(fx.Frame)
	}
	c := steerClient
	f.Add(packettest.ARPRequest(steerRouter.MAC, steerRouter.Addr.Addr(), steerVIP))
	f.Add(packettest.UDP4(steerBackend, steerTo(steerLocal, 61000), []byte("x")))
	f.Add(packettest.UDP4(c, steerTo(steerVIP, 53), []byte("x"), packettest.WithIPOptions([]byte{1, 1, 1, 0})))
	f.Add(packettest.Encap4(decapLB, decapBackend, packettest.IPPacket(packettest.UDP4(decapClient, decapVIP, []byte("x")))))
	f.Add(decapWithOuterOptions(packettest.Encap4(decapLB, decapBackend, packettest.IPPacket(packettest.TCP4(decapClient, decapVIP, packettest.FlagSYN, nil))), 8))
}

func FuzzSteerProgram(f *testing.F) {
	steerFuzzSeeds(f)
	s := steerLoaded(f, 1)
	if err := s.SetSocket(0, progXSK(f)); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, frame []byte) {
		if len(frame) < 14 || len(frame) > 1514 {
			return // an Ethernet header, at most a standard frame
		}
		ret, out := progRun(t, s.prog, frame)
		want := uint32(xdpPass)
		if steerModel(frame) {
			want = xdpRedirect
		}
		if ret != want {
			t.Errorf("action %d, the model says %d, for\n% x", ret, want, frame)
		}
		if !bytes.Equal(out, frame) {
			t.Errorf("the program changed the frame")
		}
	})
}

func FuzzDecapProgram(f *testing.F) {
	steerFuzzSeeds(f)
	d := decapLoaded(f)
	f.Fuzz(func(t *testing.T, frame []byte) {
		if len(frame) < 14 || len(frame) > 1514 {
			return
		}
		ret, out := progRun(t, d.prog, frame)
		if ret != xdpPass {
			t.Errorf("action %d, want XDP_PASS", ret)
		}
		if want := decapModel(frame); !bytes.Equal(out, want) {
			t.Errorf("frame in\n% x\nout\n% x\nthe model says\n% x", frame, out, want)
		}
	})
}
