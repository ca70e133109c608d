package suite

import (
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"math"
	"strings"
	"text/tabwriter"
)

// Table writes the report as text tables: packet rates with each DUT's
// ratio to Culvert nat at the same size, connection rates with each
// target's ratio to Culvert, the generator next to trafgen, and the
// verdicts of issue 6's claims.
func (r *Report) Table(w io.Writer) {
	napi := fmt.Sprintf("its receive path (threaded NAPI) on CPU %d too", r.Options.DUTCPU)
	if r.Options.SenderNAPI {
		napi = fmt.Sprintf("its receive path in the sender's softirq (CPU %d)", r.Options.GenCPU)
	}
	if r.Options.BusyPoll && !r.Options.SenderNAPI {
		napi = fmt.Sprintf("its receive path run by the AF_XDP worker itself (preferred busy polling; by the sender's softirq when the worker does not hold it) or, for the kernel's DUTs, by threaded NAPI on CPU %d", r.Options.DUTCPU)
	}
	fmt.Fprintf(w, "culvert bench: kernel %s, %d CPUs, %v; generator on CPU %d, device under test on CPU %d, %s\n",
		r.Kernel, r.CPUs, r.Took.Round(1e9), r.Options.GenCPU, r.Options.DUTCPU, napi)
	fmt.Fprintf(w, "throughput: highest rate with loss <= %.2f%%, median (min-max) of %d trials of %v, %d flows; latency one-way at %.0f%% of it\n\n",
		100*r.Options.LossTarget, r.Options.Repeats, r.Options.Trial, r.Options.Flows, 100*r.Options.LatencyLoad)
	tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', tabwriter.AlignRight)
	if len(r.Throughput) > 0 {
		fmt.Fprintln(tw, "device\tframe\tMpps\tmin-max\tGbit/s\tloss\tp50 µs\tp99 µs\tp99.9 µs\tvs culvert-nat\t")
		for _, t := range r.Throughput {
			if t.Error != "" {
				fmt.Fprintf(tw, "%s\t%d\terror: %s\t\t\t\t\t\t\t\t\n", t.DUT, t.Size, oneLine(t.Error))
				continue
			}
			lat := "\t\t\t"
			if l := t.Latency; l != nil && l.Error == "" {
				lat = fmt.Sprintf("%.0f\t%.0f\t%.0f\t", l.P50, l.P99, l.P999)
			}
			ratio := "-"
			if c, ok := r.Find(DUTCulvertNAT, t.Size); ok && c.Error == "" && c.PPS.Median > 0 {
				ratio = fmt.Sprintf("%.2f×", t.PPS.Median/c.PPS.Median)
			}
			gl := ""
			if t.GenLimited {
				gl = "≥"
			}
			fmt.Fprintf(tw, "%s\t%d\t%s%.3f\t%.3f-%.3f\t%.2f\t%.3f%%\t%s%s\t\n", t.DUT, t.Size, gl, t.PPS.Median/1e6, t.PPS.Min/1e6, t.PPS.Max/1e6,
				t.Gbps.Median, 100*t.Loss.Median, lat, ratio)
		}
	}
	tw.Flush()
	if len(r.Conns) > 0 {
		fmt.Fprintf(w, "\nnew TCP connections (connect, HTTP/1.0 GET, close; %d clients), median (min-max) of %d trials of %v\n\n",
			r.Options.ConnConcurrency, r.Options.Repeats, r.Options.ConnTrial)
		tw = tabwriter.NewWriter(w, 2, 8, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "target\tconns/s\tmin-max\tfailures\tconnect p50 µs\tp99 µs\trequest p50 µs\tp99 µs\tp99.9 µs\tvs culvert-nat\t")
		cv, cok := r.FindConn(ConnCulvert)
		for _, c := range r.Conns {
			if c.Error != "" && c.Rate.Median == 0 {
				fmt.Fprintf(tw, "%s\terror: %s\t\t\t\t\t\t\t\t\t\n", c.Target, oneLine(c.Error))
				continue
			}
			ratio := "-"
			if cok && cv.Rate.Median > 0 {
				ratio = fmt.Sprintf("%.2f×", c.Rate.Median/cv.Rate.Median)
			}
			fmt.Fprintf(tw, "%s\t%.0f\t%.0f-%.0f\t%d\t%.0f\t%.0f\t%.0f\t%.0f\t%.0f\t%s\t\n", c.Target, c.Rate.Median, c.Rate.Min, c.Rate.Max, c.Failures,
				c.ConnectP50, c.ConnectP99, c.RequestP50, c.RequestP99, c.RequestP999, ratio)
		}
		tw.Flush()
	}
	if g := r.Generator; g != nil {
		fmt.Fprintf(w, "\ngenerator alone, 64-byte UDP into an XDP drop sink, one CPU: culvert %.3f Mpps (%.3f-%.3f), trafgen --cpus 1 %.3f Mpps (%.3f-%.3f)",
			g.Culvert.Median/1e6, g.Culvert.Min/1e6, g.Culvert.Max/1e6, g.Trafgen.Median/1e6, g.Trafgen.Min/1e6, g.Trafgen.Max/1e6)
		if g.Trafgen.Median > 0 {
			fmt.Fprintf(w, ": %.2f×", g.Culvert.Median/g.Trafgen.Median)
		}
		if g.Error != "" {
			fmt.Fprintf(w, " (%s)", oneLine(g.Error))
		}
		fmt.Fprintln(w)
	}
	if v := r.Verdicts(); len(v) > 0 {
		fmt.Fprintln(w, "\nclaims:")
		for _, s := range v {
			fmt.Fprintln(w, "  "+s)
		}
	}
}

// Verdicts checks the claims against the figures: Culvert nat
// against nftables and the AF_XDP reflector at 64 bytes, Culvert against
// HAProxy in connections per second, and the generator against trafgen.
func (r *Report) Verdicts() []string {
	var out []string
	mark := func(ok bool) string {
		if ok {
			return "yes"
		}
		return "NO"
	}
	if c, ok := r.Find(DUTCulvertNAT, 64); ok && c.Error == "" {
		if n, ok := r.Find(DUTNFTables, 64); ok && n.Error == "" {
			out = append(out, fmt.Sprintf("culvert nat forwards more 64-byte packets than nftables: %s (%.2f×)", mark(c.PPS.Median > n.PPS.Median), c.PPS.Median/n.PPS.Median))
		}
		if f, ok := r.Find(DUTReflector, 64); ok && f.Error == "" {
			x := c.PPS.Median / f.PPS.Median
			out = append(out, fmt.Sprintf("culvert nat reaches 85%% of the AF_XDP reflector: %s (%.0f%%)", mark(x >= 0.85), 100*x))
		}
	}
	if c, ok := r.FindConn(ConnCulvert); ok && c.Rate.Median > 0 {
		if h, ok := r.FindConn(ConnHAProxy); ok && h.Rate.Median > 0 {
			out = append(out, fmt.Sprintf("culvert sets up more TCP connections per second than HAProxy: %s (%.2f×)", mark(c.Rate.Median > h.Rate.Median), c.Rate.Median/h.Rate.Median))
		}
	}
	if g := r.Generator; g != nil && g.Trafgen.Median > 0 {
		out = append(out, fmt.Sprintf("the generator outpaces trafgen --cpus 1: %s (%.2f×)", mark(g.Culvert.Median > g.Trafgen.Median), g.Culvert.Median/g.Trafgen.Median))
	}
	return out
}

func oneLine(s string) string {
	s = strings.ReplaceAll(s, "\n", " ")
	if len(s) > 120 {
		s = s[:117] + "..."
	}
	return s
}

// WriteJSON writes the report as indented JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	e := json.NewEncoder(w)
	e.SetIndent("", "  ")
	return e.Encode(r)
}

// WriteHTML writes a self-contained page: the tables, a chart of loss
// against offered rate for every search, and the latency CDFs, as inline
// SVG (no scripts, nothing fetched).
func (r *Report) WriteHTML(w io.Writer) error {
	var tbl strings.Builder
	r.Table(&tbl)
	type series struct {
		Name   string
		Color  string
		Points string
	}
	colors := []string{"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf", "#393b79", "#637939"}
	const W, H, pad = 640.0, 320.0, 40.0
	var loss, cdf []series
	var maxRate, maxLat float64
	for _, t := range r.Throughput {
		for _, s := range t.Search {
			maxRate = math.Max(maxRate, s.Offered)
		}
		if t.Latency != nil {
			for _, p := range t.Latency.CDF {
				maxLat = math.Max(maxLat, p[0])
			}
		}
	}
	maxLat = math.Max(maxLat, 1)
	for i, t := range r.Throughput {
		name := fmt.Sprintf("%s %dB", t.DUT, t.Size)
		c := colors[i%len(colors)]
		var pts []string
		for _, s := range t.Search {
			x := pad + (W-2*pad)*s.Offered/math.Max(maxRate, 1)
			y := H - pad - (H-2*pad)*math.Min(s.Loss, 1)
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", x, y))
		}
		if len(pts) > 0 {
			loss = append(loss, series{name, c, strings.Join(pts, " ")})
		}
		if t.Latency != nil && len(t.Latency.CDF) > 0 {
			pts = pts[:0]
			for _, p := range t.Latency.CDF {
				// log scale in latency
				x := pad + (W-2*pad)*math.Log10(math.Max(p[0], 1))/math.Log10(maxLat*1.1)
				y := H - pad - (H-2*pad)*p[1]
				pts = append(pts, fmt.Sprintf("%.1f,%.1f", x, y))
			}
			cdf = append(cdf, series{name, c, strings.Join(pts, " ")})
		}
	}
	return htmlPage.Execute(w, map[string]any{
		"Table": tbl.String(), "Loss": loss, "CDF": cdf, "W": W, "H": H, "Pad": pad,
		"MaxRate": fmt.Sprintf("%.2f Mpps", maxRate/1e6), "MaxLat": fmt.Sprintf("%.0f µs", maxLat*1.1),
	})
}

var htmlPage = template.Must(template.New("bench").Parse(`<!doctype html>
<html><head><meta charset="utf-8"><title>culvert bench</title>
<style>body{font-family:sans-serif;margin:2em}pre{background:#f6f6f6;padding:1em;overflow-x:auto}svg{border:1px solid #ccc;margin:1em 0}.k{font-size:12px}</style>
</head><body>
<h1>culvert bench</h1>
<pre>{{.Table}}</pre>
<h2>Loss against offered rate (every search trial)</h2>
<svg width="{{.W}}" height="{{.H}}" viewBox="0 0 {{.W}} {{.H}}">
<text x="{{.Pad}}" y="{{.H}}" class="k" dy="-8">0</text><text x="{{.W}}" y="{{.H}}" class="k" dx="-90" dy="-8">{{.MaxRate}}</text>
<text x="4" y="{{.Pad}}" class="k">100% loss</text>
{{range .Loss}}<polyline fill="none" stroke="{{.Color}}" stroke-width="1.5" points="{{.Points}}"><title>{{.Name}}</title></polyline>{{end}}
</svg>
<p class="k">{{range .Loss}}<span style="color:{{.Color}}">■</span> {{.Name}} &nbsp; {{end}}</p>
<h2>One-way latency CDF (log scale, up to {{.MaxLat}})</h2>
<svg width="{{.W}}" height="{{.H}}" viewBox="0 0 {{.W}} {{.H}}">
<text x="4" y="{{.Pad}}" class="k">1.0</text><text x="{{.W}}" y="{{.H}}" class="k" dx="-90" dy="-8">{{.MaxLat}}</text>
{{range .CDF}}<polyline fill="none" stroke="{{.Color}}" stroke-width="1.5" points="{{.Points}}"><title>{{.Name}}</title></polyline>{{end}}
</svg>
<p class="k">{{range .CDF}}<span style="color:{{.Color}}">■</span> {{.Name}} &nbsp; {{end}}</p>
</body></html>
`))
