package appliance

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/culvert-lb/culvert/appliance/health"
)

// The YAML form of a Spec. Names follow what an operator of keepalived,
// HAProxy or IPVS would guess. Unknown keys are errors.
type fileSpec struct {
	Interfaces  []fileInterface `yaml:"interfaces"`
	Gateway     string          `yaml:"gateway,omitempty"`
	MaxFlows    int             `yaml:"max_flows,omitempty"`
	Timeouts    *fileTimeouts   `yaml:"timeouts,omitempty"`
	Control     string          `yaml:"control_socket,omitempty"`
	Metrics     string          `yaml:"metrics_listen,omitempty"`
	HashKey     string          `yaml:"hash_key"`
	LocalAddrs  []string        `yaml:"local_addrs"`
	EncapSource string          `yaml:"encap_source,omitempty"`
	MTU         int             `yaml:"mtu,omitempty"`
	MaglevSize  int             `yaml:"maglev_size,omitempty"`
	Services    []fileService   `yaml:"services"`
	HA          *fileHA         `yaml:"ha,omitempty"`
	WorkerCPUs  []int           `yaml:"worker_cpus,omitempty"`
	BusyPoll    bool            `yaml:"busy_poll,omitempty"`
}

type fileHA struct {
	Interface    string      `yaml:"interface,omitempty"`
	UnicastPeers []string    `yaml:"unicast_peer,omitempty"`
	Groups       []fileGroup `yaml:"vrrp_instances"`
	Sync         *fileSync   `yaml:"sync,omitempty"`
}

type fileGroup struct {
	Name             string      `yaml:"name,omitempty"`
	VirtualRouterID  int         `yaml:"virtual_router_id"`
	Priority         int         `yaml:"priority"`
	AdvertInt        string      `yaml:"advert_int,omitempty"` // a duration (100ms) or keepalived's seconds (0.1)
	NoPreempt        bool        `yaml:"nopreempt,omitempty"`
	PreemptDelay     string      `yaml:"preempt_delay,omitempty"`
	VirtualIPAddress []string    `yaml:"virtual_ipaddress,omitempty"`
	LocalAddrs       []string    `yaml:"local_addrs,omitempty"`
	TrackInterface   []fileTrack `yaml:"track_interface,omitempty"`
	TrackService     []fileTrack `yaml:"track_service,omitempty"`
}

type fileTrack struct {
	Name   string `yaml:"name"`
	Weight int    `yaml:"weight,omitempty"`
}

type fileSync struct {
	Listen  string `yaml:"listen"`
	Peer    string `yaml:"peer"`
	Key     string `yaml:"key"`
	Refresh string `yaml:"refresh,omitempty"`
}

type fileTimeouts struct {
	TCPSyn         string `yaml:"tcp_syn,omitempty"`
	TCPEstablished string `yaml:"tcp_established,omitempty"`
	TCPFinWait     string `yaml:"tcp_fin_wait,omitempty"`
	TCPTimeWait    string `yaml:"tcp_time_wait,omitempty"`
	TCPClose       string `yaml:"tcp_close,omitempty"`
	UDP            string `yaml:"udp,omitempty"`
	UDPUnreplied   string `yaml:"udp_unreplied,omitempty"`
}

type fileInterface struct {
	Name   string `yaml:"name,omitempty"`
	Queues int    `yaml:"queues"`
	Role   string `yaml:"role,omitempty"`
}

type fileService struct {
	Name        string        `yaml:"name,omitempty"`
	VIP         string        `yaml:"vip"`
	Protocol    string        `yaml:"protocol"`
	Port        int           `yaml:"port"`
	PortEnd     int           `yaml:"port_end,omitempty"`
	Mode        string        `yaml:"mode"`
	Scheduler   string        `yaml:"scheduler,omitempty"`
	Persistence string        `yaml:"persistence,omitempty"`
	HealthCheck *fileHealth   `yaml:"health_check,omitempty"`
	Backends    []fileBackend `yaml:"backends"`
}

// fileHealth is a service's health_check: HAProxy's and keepalived's names
// where they fit (inter, rise, fall).
type fileHealth struct {
	Type         string   `yaml:"type"` // tcp, http, https, udp, exec
	Interval     string   `yaml:"interval,omitempty"`
	Timeout      string   `yaml:"timeout,omitempty"`
	Rise         int      `yaml:"rise,omitempty"`
	Fall         int      `yaml:"fall,omitempty"`
	Path         string   `yaml:"path,omitempty"`
	ExpectStatus int      `yaml:"expect_status,omitempty"`
	ExpectBody   string   `yaml:"expect_body,omitempty"`
	Send         string   `yaml:"send,omitempty"`
	Expect       string   `yaml:"expect,omitempty"`
	Command      []string `yaml:"command,omitempty"`
	Port         int      `yaml:"port,omitempty"`
}

func (h *fileHealth) spec(at string, errs *[]error) *health.Spec {
	k, err := health.ParseKind(h.Type)
	if err != nil {
		*errs = append(*errs, fmt.Errorf("%s.type: %v", at, err))
	}
	dur := func(field, v string) time.Duration {
		if v == "" {
			return 0
		}
		d, err := time.ParseDuration(v)
		if err != nil {
			*errs = append(*errs, fmt.Errorf("%s.%s: %q is not a duration (like 2s)", at, field, v))
		}
		return d
	}
	return &health.Spec{
		Kind: k, Interval: dur("interval", h.Interval), Timeout: dur("timeout", h.Timeout),
		Rise: h.Rise, Fall: h.Fall, Path: h.Path, ExpectStatus: h.ExpectStatus, ExpectBody: h.ExpectBody,
		Send: []byte(h.Send), Expect: []byte(h.Expect), Command: h.Command, Port: port(at+".port", h.Port, errs),
	}
}

func fileHealthOf(h *health.Spec) *fileHealth {
	if h == nil {
		return nil
	}
	f := &fileHealth{Type: h.Kind.String(), Rise: h.Rise, Fall: h.Fall, Path: h.Path, ExpectStatus: h.ExpectStatus,
		ExpectBody: h.ExpectBody, Send: string(h.Send), Expect: string(h.Expect), Command: h.Command, Port: int(h.Port)}
	if h.Interval != 0 {
		f.Interval = h.Interval.String()
	}
	if h.Timeout != 0 {
		f.Timeout = h.Timeout.String()
	}
	return f
}

type fileBackend struct {
	Address string `yaml:"address"`
	Port    int    `yaml:"port"`
	Weight  *int   `yaml:"weight"`
	Enabled *bool  `yaml:"enabled,omitempty"` // default true
}

// LoadFile reads and validates a configuration file. Every problem is
// reported with file:line:column.
func LoadFile(path string) (*Spec, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(path, b)
}

// Parse parses and validates a configuration; name is used in error
// locations.
func Parse(name string, data []byte) (*Spec, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, yamlError(name, err, nil)
	}
	if len(root.Content) == 0 {
		return nil, fmt.Errorf("%s:1:1: empty configuration", name)
	}
	var f fileSpec
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		return nil, yamlError(name, err, &root)
	}
	s, errs := f.spec()
	bad := map[string]bool{}
	for _, e := range errs {
		p, _, _ := strings.Cut(e.Error(), ": ")
		bad[p] = true
	}
	if err := s.Validate(); err != nil {
		for _, e := range unjoin(err) {
			// A value that did not convert is reported once, as such,
			// and not again through what it made invalid around it.
			p, _, _ := strings.Cut(e.Error(), ": ")
			dup := bad[p]
			for b := range bad {
				dup = dup || strings.HasPrefix(b, p+".")
			}
			if !dup {
				errs = append(errs, e)
			}
		}
	}
	if len(errs) == 0 {
		return s, nil
	}
	out := make([]error, len(errs))
	for i, e := range errs {
		line, col := locate(root.Content[0], e.Error())
		out[i] = fmt.Errorf("%s:%d:%d: %w", name, line, col, e)
	}
	return nil, errors.Join(out...)
}

func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, unjoin(e)...)
		}
		return out
	}
	return []error{err}
}

var yamlLine = regexp.MustCompile(`line (\d+): `)

var unknownField = regexp.MustCompile(`^field (\S+) not found in type .*$`)

// yamlError rewrites the YAML library's "line N: msg" into
// file:line:column: msg, finding the column of an unknown key in root.
func yamlError(name string, err error, root *yaml.Node) error {
	var te *yaml.TypeError
	if errors.As(err, &te) {
		var out []error
		for _, m := range te.Errors {
			out = append(out, lineMsg(name, m, root))
		}
		return errors.Join(out...)
	}
	return lineMsg(name, strings.TrimPrefix(err.Error(), "yaml: "), root)
}

func lineMsg(name, m string, root *yaml.Node) error {
	loc := yamlLine.FindStringSubmatchIndex(m)
	if loc == nil {
		return fmt.Errorf("%s: %s", name, m)
	}
	line, _ := strconv.Atoi(m[loc[2]:loc[3]])
	msg := strings.ReplaceAll(strings.TrimSpace(m[:loc[0]]+m[loc[1]:]), "\n", `\n`)
	if before, into, ok := strings.Cut(msg, " into "); ok {
		// Name the expected shape, not our Go types.
		switch {
		case strings.HasPrefix(into, "[]"):
			into = "a list"
		case strings.Contains(into, "struct") || strings.Contains(into, "fileSpec"):
			into = "a mapping"
		case strings.HasPrefix(into, "*"):
			into = into[1:]
		}
		msg = before + ": want " + into
	}
	col := 1
	if u := unknownField.FindStringSubmatch(msg); u != nil {
		msg = fmt.Sprintf("unknown key %q", u[1])
		if k := findKey(root, u[1], line); k != nil {
			col = k.Column
		}
	}
	return fmt.Errorf("%s:%d:%d: %s", name, line, col, msg)
}

// findKey finds the mapping key named key on line.
func findKey(n *yaml.Node, key string, line int) *yaml.Node {
	if n == nil {
		return nil
	}
	if n.Kind == yaml.MappingNode {
		for i := 0; i < len(n.Content); i += 2 {
			if k := n.Content[i]; k.Value == key && k.Line == line {
				return k
			}
		}
	}
	for _, c := range n.Content {
		if k := findKey(c, key, line); k != nil {
			return k
		}
	}
	return nil
}

var pathElem = regexp.MustCompile(`^([a-z_]+)(?:\[(\d+)\])?`)

// locate finds the line and column of the YAML node a message's leading
// path ("services[1].backends[0].address: ...") names, or of its closest
// existing ancestor.
func locate(n *yaml.Node, msg string) (int, int) {
	path, _, _ := strings.Cut(msg, ": ")
	line, col := n.Line, n.Column
	for _, part := range strings.Split(path, ".") {
		m := pathElem.FindStringSubmatch(part)
		if m == nil || n.Kind != yaml.MappingNode {
			break
		}
		var next *yaml.Node
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == m[1] {
				line, col = n.Content[i].Line, n.Content[i].Column
				next = n.Content[i+1]
			}
		}
		if next == nil {
			break
		}
		n = next
		if m[2] != "" {
			idx, _ := strconv.Atoi(m[2])
			if n.Kind != yaml.SequenceNode || idx >= len(n.Content) {
				break
			}
			n = n.Content[idx]
			line, col = n.Line, n.Column
		}
	}
	return line, col
}

func addr(path, s string, errs *[]error) netip.Addr {
	if s == "" {
		return netip.Addr{}
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		*errs = append(*errs, fmt.Errorf("%s: %q is not an IP address", path, s))
	}
	return a
}

func port(path string, p int, errs *[]error) uint16 {
	if p < 0 || p > 65535 {
		*errs = append(*errs, fmt.Errorf("%s: %d is not a port (0..65535)", path, p))
		return 0
	}
	return uint16(p)
}

// spec converts the file form, collecting conversion errors.
func (f *fileSpec) spec() (*Spec, []error) {
	var errs []error
	s := &Spec{
		Gateway:     addr("gateway", f.Gateway, &errs),
		MaxFlows:    f.MaxFlows,
		HashKey:     f.HashKey,
		EncapSource: addr("encap_source", f.EncapSource, &errs),
		MTU:         f.MTU,
		MaglevSize:  f.MaglevSize,
	}
	s.ControlSocket, s.MetricsListen = f.Control, f.Metrics
	if t := f.Timeouts; t != nil {
		dur := func(field, v string) time.Duration {
			if v == "" {
				return 0
			}
			d, err := time.ParseDuration(v)
			if err != nil {
				errs = append(errs, fmt.Errorf("timeouts.%s: %q is not a duration (like 120s)", field, v))
			}
			return d
		}
		s.Timeouts = TimeoutsSpec{TCPSyn: dur("tcp_syn", t.TCPSyn), TCPEstablished: dur("tcp_established", t.TCPEstablished),
			TCPFinWait: dur("tcp_fin_wait", t.TCPFinWait), TCPTimeWait: dur("tcp_time_wait", t.TCPTimeWait),
			TCPClose: dur("tcp_close", t.TCPClose), UDP: dur("udp", t.UDP), UDPUnreplied: dur("udp_unreplied", t.UDPUnreplied)}
	}
	for _, i := range f.Interfaces {
		s.Interfaces = append(s.Interfaces, InterfaceSpec{Name: i.Name, Queues: i.Queues, Role: i.Role})
	}
	for i, a := range f.LocalAddrs {
		s.LocalAddrs = append(s.LocalAddrs, addr(fmt.Sprintf("local_addrs[%d]", i), a, &errs))
	}
	for i, sv := range f.Services {
		at := fmt.Sprintf("services[%d]", i)
		ss := ServiceSpec{
			Name:      sv.Name,
			VIP:       addr(at+".vip", sv.VIP, &errs),
			Protocol:  sv.Protocol,
			Port:      port(at+".port", sv.Port, &errs),
			Mode:      sv.Mode,
			Scheduler: sv.Scheduler,
		}
		if sv.Port == 0 {
			errs = append(errs, fmt.Errorf("%s.port: missing", at))
		}
		if sv.PortEnd != 0 {
			ss.PortEnd = port(at+".port_end", sv.PortEnd, &errs)
			if ss.PortEnd != 0 && sv.PortEnd < sv.Port {
				errs = append(errs, fmt.Errorf("%s.port_end: %d is below port %d", at, sv.PortEnd, sv.Port))
			}
		}
		if sv.Persistence != "" {
			d, err := time.ParseDuration(sv.Persistence)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s.persistence: %q is not a duration (like 300s)", at, sv.Persistence))
			}
			ss.Persistence = d
		}
		if sv.HealthCheck != nil {
			ss.HealthCheck = sv.HealthCheck.spec(at+".health_check", &errs)
		}
		for j, b := range sv.Backends {
			bt := fmt.Sprintf("%s.backends[%d]", at, j)
			w := 1
			if b.Weight != nil {
				w = *b.Weight
			}
			if w < 0 || w > 65535 {
				errs = append(errs, fmt.Errorf("%s.weight: %d is outside 0..65535", bt, w))
				w = 0
			}
			ss.Backends = append(ss.Backends, BackendSpec{Address: addr(bt+".address", b.Address, &errs), Port: port(bt+".port", b.Port, &errs), Weight: uint32(w),
				Disabled: b.Enabled != nil && !*b.Enabled})
		}
		s.Services = append(s.Services, ss)
	}
	if f.HA != nil {
		s.HA = f.HA.spec(&errs)
	}
	s.WorkerCPUs, s.BusyPoll = f.WorkerCPUs, f.BusyPoll
	return s, errs
}

// seconds parses a duration written like 100ms, or as keepalived's plain
// seconds (0.1).
func seconds(path, v string, errs *[]error) time.Duration {
	if v == "" {
		return 0
	}
	if d, err := time.ParseDuration(v); err == nil {
		return d
	}
	if f, err := strconv.ParseFloat(v, 64); err == nil && f >= 0 && f < 1e6 {
		return time.Duration(f * float64(time.Second)).Round(time.Millisecond)
	}
	*errs = append(*errs, fmt.Errorf("%s: %q is not a duration (like 100ms, or seconds like 0.1)", path, v))
	return 0
}

func (f *fileHA) spec(errs *[]error) *HASpec {
	h := &HASpec{Interface: f.Interface}
	for i, a := range f.UnicastPeers {
		h.UnicastPeers = append(h.UnicastPeers, addr(fmt.Sprintf("ha.unicast_peer[%d]", i), a, errs))
	}
	for i, g := range f.Groups {
		at := fmt.Sprintf("ha.vrrp_instances[%d]", i)
		gs := VRRPGroupSpec{Name: g.Name, NoPreempt: g.NoPreempt,
			AdvertInt: seconds(at+".advert_int", g.AdvertInt, errs), PreemptDelay: seconds(at+".preempt_delay", g.PreemptDelay, errs)}
		if g.VirtualRouterID < 1 || g.VirtualRouterID > 255 {
			*errs = append(*errs, fmt.Errorf("%s.virtual_router_id: %d is outside 1..255", at, g.VirtualRouterID))
		} else {
			gs.VirtualRouterID = uint8(g.VirtualRouterID)
		}
		if g.Priority < 1 || g.Priority > 254 {
			*errs = append(*errs, fmt.Errorf("%s.priority: %d is outside 1..254", at, g.Priority))
		} else {
			gs.Priority = uint8(g.Priority)
		}
		for j, a := range g.VirtualIPAddress {
			gs.VirtualIPAddress = append(gs.VirtualIPAddress, addr(fmt.Sprintf("%s.virtual_ipaddress[%d]", at, j), a, errs))
		}
		for j, a := range g.LocalAddrs {
			gs.LocalAddrs = append(gs.LocalAddrs, addr(fmt.Sprintf("%s.local_addrs[%d]", at, j), a, errs))
		}
		for _, t := range g.TrackInterface {
			gs.TrackInterface = append(gs.TrackInterface, TrackSpec{Name: t.Name, Weight: t.Weight})
		}
		for _, t := range g.TrackService {
			gs.TrackService = append(gs.TrackService, TrackSpec{Name: t.Name, Weight: t.Weight})
		}
		h.Groups = append(h.Groups, gs)
	}
	if sy := f.Sync; sy != nil {
		ss := &SyncSpec{Key: sy.Key, Refresh: seconds("ha.sync.refresh", sy.Refresh, errs)}
		for _, x := range []struct {
			path, v string
			dst     *netip.AddrPort
		}{{"ha.sync.listen", sy.Listen, &ss.Listen}, {"ha.sync.peer", sy.Peer, &ss.Peer}} {
			ap, err := netip.ParseAddrPort(x.v)
			if err != nil {
				*errs = append(*errs, fmt.Errorf("%s: %q is not an address:port", x.path, x.v))
			}
			*x.dst = ap
		}
		h.Sync = ss
	}
	return h
}

// Marshal writes s in the configuration file's YAML form; Parse reads it
// back to an equal Spec.
func Marshal(s *Spec) ([]byte, error) {
	str := func(a netip.Addr) string {
		if !a.IsValid() {
			return ""
		}
		return a.String()
	}
	f := fileSpec{Control: s.ControlSocket, Metrics: s.MetricsListen, Gateway: str(s.Gateway), MaxFlows: s.MaxFlows, HashKey: s.HashKey, EncapSource: str(s.EncapSource), MTU: s.MTU, MaglevSize: s.MaglevSize}
	if t := s.Timeouts; t != (TimeoutsSpec{}) {
		d := func(v time.Duration) string {
			if v == 0 {
				return ""
			}
			return v.String()
		}
		f.Timeouts = &fileTimeouts{TCPSyn: d(t.TCPSyn), TCPEstablished: d(t.TCPEstablished), TCPFinWait: d(t.TCPFinWait),
			TCPTimeWait: d(t.TCPTimeWait), TCPClose: d(t.TCPClose), UDP: d(t.UDP), UDPUnreplied: d(t.UDPUnreplied)}
	}
	for _, i := range s.Interfaces {
		f.Interfaces = append(f.Interfaces, fileInterface{Name: i.Name, Queues: i.Queues, Role: i.Role})
	}
	for _, a := range s.LocalAddrs {
		f.LocalAddrs = append(f.LocalAddrs, a.String())
	}
	for _, sv := range s.Services {
		fs := fileService{Name: sv.Name, VIP: sv.VIP.String(), Protocol: sv.Protocol, Port: int(sv.Port), PortEnd: int(sv.PortEnd), Mode: sv.Mode, Scheduler: sv.Scheduler, HealthCheck: fileHealthOf(sv.HealthCheck)}
		if sv.Persistence != 0 {
			fs.Persistence = sv.Persistence.String()
		}
		for _, b := range sv.Backends {
			w := int(b.Weight)
			fb := fileBackend{Address: b.Address.String(), Port: int(b.Port), Weight: &w}
			if b.Disabled {
				f := false
				fb.Enabled = &f
			}
			fs.Backends = append(fs.Backends, fb)
		}
		f.Services = append(f.Services, fs)
	}
	if h := s.HA; h != nil {
		f.HA = fileHAOf(h)
	}
	f.WorkerCPUs, f.BusyPoll = s.WorkerCPUs, s.BusyPoll
	return yaml.Marshal(&f)
}

func fileHAOf(h *HASpec) *fileHA {
	strs := func(as []netip.Addr) []string {
		var out []string
		for _, a := range as {
			out = append(out, a.String())
		}
		return out
	}
	d := func(v time.Duration) string {
		if v == 0 {
			return ""
		}
		return v.String()
	}
	f := &fileHA{Interface: h.Interface, UnicastPeers: strs(h.UnicastPeers)}
	for _, g := range h.Groups {
		fg := fileGroup{Name: g.Name, VirtualRouterID: int(g.VirtualRouterID), Priority: int(g.Priority), AdvertInt: d(g.AdvertInt),
			NoPreempt: g.NoPreempt, PreemptDelay: d(g.PreemptDelay), VirtualIPAddress: strs(g.VirtualIPAddress), LocalAddrs: strs(g.LocalAddrs)}
		for _, t := range g.TrackInterface {
			fg.TrackInterface = append(fg.TrackInterface, fileTrack(t))
		}
		for _, t := range g.TrackService {
			fg.TrackService = append(fg.TrackService, fileTrack(t))
		}
		f.Groups = append(f.Groups, fg)
	}
	if sy := h.Sync; sy != nil {
		f.Sync = &fileSync{Listen: sy.Listen.String(), Peer: sy.Peer.String(), Key: sy.Key, Refresh: d(sy.Refresh)}
	}
	return f
}
