package suite

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestSummarize(t *testing.T) {
	for _, tc := range []struct {
		in   []float64
		want Summary
	}{
		{nil, Summary{}},
		{[]float64{3}, Summary{3, 3, 3}},
		{[]float64{5, 1, 3}, Summary{3, 1, 5}},
		{[]float64{4, 1, 3, 2}, Summary{2.5, 1, 4}},
	} {
		if got := Summarize(tc.in); got != tc.want {
			t.Errorf("Summarize(%v) = %+v, want %+v", tc.in, got, tc.want)
		}
	}
}

func sampleReport() *Report {
	r := &Report{Options: Options{}.withDefaults(), Kernel: "6.18", CPUs: 2, Took: time.Minute}
	add := func(dut string, pps float64, lat *Latency) {
		r.Throughput = append(r.Throughput, Throughput{DUT: dut, Size: 64, PPS: Summary{pps, pps * 0.9, pps * 1.1},
			Search: []Step{{Offered: 2 * pps, Received: pps, Loss: 0.5}, {Offered: pps, Received: pps}}, Latency: lat})
	}
	add(DUTReflector, 400e3, &Latency{P50: 10, P99: 90, CDF: [][2]float64{{5, 0}, {10, 0.5}, {90, 0.99}, {120, 1}}})
	add(DUTNFTables, 150e3, nil)
	add(DUTCulvertNAT, 360e3, &Latency{P50: 12, P99: 100, CDF: [][2]float64{{6, 0}, {12, 0.5}, {100, 0.99}, {150, 1}}})
	r.Throughput = append(r.Throughput, Throughput{DUT: DUTCulvertIPIP, Size: 64, Error: "boom\nsecond line"})
	r.Conns = []ConnRate{{Target: ConnHAProxy, Rate: Summary{5000, 4800, 5100}}, {Target: ConnCulvert, Rate: Summary{8000, 7900, 8100}}}
	r.Generator = &GenCompare{Culvert: Summary{Median: 2e6}, Trafgen: Summary{Median: 1e6}}
	return r
}

// TestReportTable: the table carries each figure, its ratio to Culvert nat,
// errors on one line, and the claims with their verdicts.
func TestReportTable(t *testing.T) {
	var b bytes.Buffer
	sampleReport().Table(&b)
	out := b.String()
	for _, want := range []string{
		"reflector", "0.400", "1.11×", // 400k / 360k
		"nftables", "0.42×",
		"culvert-ipip", "error: boom second line",
		"haproxy", "0.62×", // 5000 / 8000
		"trafgen --cpus 1 1.000 Mpps", "2.00×",
		"culvert nat forwards more 64-byte packets than nftables: yes (2.40×)",
		"culvert nat reaches 85% of the AF_XDP reflector: yes (90%)",
		"culvert sets up more TCP connections per second than HAProxy: yes (1.60×)",
		"the generator outpaces trafgen --cpus 1: yes (2.00×)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	r := sampleReport()
	r.Throughput[2].PPS.Median = 300e3 // 75% of the reflector
	if v := strings.Join(r.Verdicts(), "\n"); !strings.Contains(v, "reflector: NO (75%)") {
		t.Errorf("verdicts:\n%s", v)
	}
}

// TestReportJSONAndHTML: the JSON reads back, and the page holds the
// table and one line per search and per latency CDF.
func TestReportJSONAndHTML(t *testing.T) {
	r := sampleReport()
	var b bytes.Buffer
	if err := r.WriteJSON(&b); err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(b.Bytes(), &back); err != nil {
		t.Fatal(err)
	}
	if len(back.Throughput) != 4 || back.Throughput[2].PPS.Median != 360e3 || back.Conns[1].Rate.Median != 8000 {
		t.Errorf("JSON round trip: %+v", back)
	}
	b.Reset()
	if err := r.WriteHTML(&b); err != nil {
		t.Fatal(err)
	}
	page := b.String()
	if n := strings.Count(page, "<polyline"); n != 5 { // 3 searches + 2 CDFs
		t.Errorf("%d polylines, want 5", n)
	}
	if !strings.Contains(page, "culvert-nat") || strings.Contains(page, "<script") {
		t.Error("page lacks the table, or has a script")
	}
}
