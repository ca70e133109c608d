package metrics

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/culvert-lb/culvert/appliance/flowsync"
	"github.com/culvert-lb/culvert/appliance/vrrp"
	"github.com/culvert-lb/culvert/dataplane"
)

// HASource is what the HA metrics read at each scrape: the VRRP router's
// snapshot and the sync endpoint's with the dataplane's sync queues; ok
// false leaves that part out.
type HASource struct {
	VRRP func() (vrrp.Snapshot, bool)
	Sync func() (flowsync.Snapshot, dataplane.SyncStats, bool)
}

type haMetrics struct {
	src HASource

	vrrpState, vrrpPriority, vrrpTransitions, vrrpSent, vrrpReceived, vrrpRejected *prometheus.Desc
	syncLag, syncBacklog, syncDrops, syncSent, syncReceived, syncImported          *prometheus.Desc
	syncRejected, syncLost, syncSynced, syncNacks, syncResent                      *prometheus.Desc
}

// WithHA adds the HA pair's metrics to c: VRRP state, priority,
// transitions and adverts sent, received and rejected by reason per group;
// sync lag, backlog, queue drops, records, rejects, losses, Nacks and
// resends. Call it before
// registering c.
func (c *Collector) WithHA(src HASource) *Collector {
	d := func(sub, name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(prometheus.BuildFQName(namespace, sub, name), help, labels, nil)
	}
	c.ha = &haMetrics{
		src:             src,
		vrrpState:       d("vrrp", "state", "VRRP state of the group: 0 initialize (or fault), 1 backup, 2 master.", "vrid"),
		vrrpPriority:    d("vrrp", "priority", "Priority in use, after tracking.", "vrid"),
		vrrpTransitions: d("vrrp", "transitions_total", "State transitions of the group.", "vrid"),
		vrrpSent:        d("vrrp", "adverts_sent_total", "Advertisements sent.", "vrid"),
		vrrpReceived:    d("vrrp", "adverts_received_total", "Advertisements accepted.", "vrid"),
		vrrpRejected:    d("vrrp", "adverts_rejected_total", "Advertisements rejected, by reason; vrid \"\" for those of no group.", "vrid", "reason"),
		syncLag:         d("sync", "lag_seconds", "Time since the last message accepted from the peer."),
		syncBacklog:     d("sync", "backlog", "Flow changes queued by the workers and not yet sent."),
		syncDrops:       d("sync", "queue_drops_total", "Flow changes lost to full worker queues (the refresh repairs them)."),
		syncSent:        d("sync", "records_sent_total", "Flow records sent to the peer."),
		syncReceived:    d("sync", "records_received_total", "Flow records accepted from the peer."),
		syncImported:    d("sync", "records_imported_total", "Flow records installed in the table."),
		syncRejected:    d("sync", "messages_rejected_total", "Sync messages rejected, by reason.", "reason"),
		syncLost:        d("sync", "messages_lost_total", "Messages from the peer missing (sequence gaps not filled by a resend, or still in flight)."),
		syncNacks:       d("sync", "nacks_sent_total", "Nacks sent, asking the peer for missing messages again."),
		syncResent:      d("sync", "messages_resent_total", "Messages sent again for the peer's Nacks."),
		syncSynced:      d("sync", "synced", "1 once a bulk resync from the peer has completed."),
	}
	return c
}

func (h *haMetrics) describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{h.vrrpState, h.vrrpPriority, h.vrrpTransitions, h.vrrpSent, h.vrrpReceived, h.vrrpRejected,
		h.syncLag, h.syncBacklog, h.syncDrops, h.syncSent, h.syncReceived, h.syncImported, h.syncRejected, h.syncLost, h.syncSynced, h.syncNacks, h.syncResent} {
		ch <- d
	}
}

func (h *haMetrics) collect(ch chan<- prometheus.Metric) {
	m := func(d *prometheus.Desc, t prometheus.ValueType, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, t, v, labels...)
	}
	if h.src.VRRP != nil {
		if s, ok := h.src.VRRP(); ok {
			for r, n := range s.Rejects {
				if n > 0 {
					m(h.vrrpRejected, prometheus.CounterValue, float64(n), "", vrrp.RejectReason(r).String())
				}
			}
			for _, g := range s.Groups {
				id := strconv.Itoa(int(g.VRID))
				st := 0.0
				switch g.State {
				case vrrp.Backup:
					st = 1
				case vrrp.Master:
					st = 2
				}
				m(h.vrrpState, prometheus.GaugeValue, st, id)
				m(h.vrrpPriority, prometheus.GaugeValue, float64(g.EffectivePriority), id)
				m(h.vrrpTransitions, prometheus.CounterValue, float64(g.Transitions), id)
				m(h.vrrpSent, prometheus.CounterValue, float64(g.AdvertsSent), id)
				m(h.vrrpReceived, prometheus.CounterValue, float64(g.AdvertsReceived), id)
				for r, n := range g.Rejects {
					if n > 0 {
						m(h.vrrpRejected, prometheus.CounterValue, float64(n), id, vrrp.RejectReason(r).String())
					}
				}
			}
		}
	}
	if h.src.Sync != nil {
		if s, q, ok := h.src.Sync(); ok {
			m(h.syncLag, prometheus.GaugeValue, s.Lag.Seconds())
			m(h.syncBacklog, prometheus.GaugeValue, float64(q.Backlog))
			m(h.syncDrops, prometheus.CounterValue, float64(q.Dropped))
			m(h.syncSent, prometheus.CounterValue, float64(s.RecordsSent))
			m(h.syncReceived, prometheus.CounterValue, float64(s.RecordsReceived))
			m(h.syncImported, prometheus.CounterValue, float64(s.Imported))
			for r, n := range s.Rejected {
				if n > 0 {
					m(h.syncRejected, prometheus.CounterValue, float64(n), flowsync.RejectReason(r).String())
				}
			}
			m(h.syncLost, prometheus.CounterValue, float64(s.Gaps-s.Late))
			m(h.syncNacks, prometheus.CounterValue, float64(s.NacksSent))
			m(h.syncResent, prometheus.CounterValue, float64(s.Resent))
			synced := 0.0
			if s.Synced {
				synced = 1
			}
			m(h.syncSynced, prometheus.GaugeValue, synced)
		}
	}
}
