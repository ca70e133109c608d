package metrics

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/culvert-lb/culvert/appliance/flowsync"
	"github.com/culvert-lb/culvert/appliance/vrrp"
	"github.com/culvert-lb/culvert/dataplane"
)

// TestHAMetrics: VRRP state, priority and rejects by reason per group,
// and sync lag, backlog, drops and rejects, as the HA sources report them.
func TestHAMetrics(t *testing.T) {
	var g vrrp.GroupSnapshot
	g.VRID, g.State, g.EffectivePriority, g.Transitions, g.AdvertsSent = 51, vrrp.Master, 150, 2, 40
	g.Rejects[vrrp.RejectTTL] = 3
	var fs flowsync.Snapshot
	fs.Lag, fs.RecordsSent, fs.Synced, fs.Gaps, fs.Late = 250*time.Millisecond, 1000, true, 5, 1
	fs.NacksSent, fs.Resent = 3, 9
	fs.Rejected[flowsync.RejectMAC] = 7
	c := New(fake(), nil).WithHA(HASource{
		VRRP: func() (vrrp.Snapshot, bool) {
			return vrrp.Snapshot{Addr: netip.MustParseAddr("198.18.0.2"), Groups: []vrrp.GroupSnapshot{g}}, true
		},
		Sync: func() (flowsync.Snapshot, dataplane.SyncStats, bool) {
			return fs, dataplane.SyncStats{Backlog: 12, Dropped: 4}, true
		},
	})
	want := `
# HELP culvert_sync_backlog Flow changes queued by the workers and not yet sent.
# TYPE culvert_sync_backlog gauge
culvert_sync_backlog 12
# HELP culvert_sync_lag_seconds Time since the last message accepted from the peer.
# TYPE culvert_sync_lag_seconds gauge
culvert_sync_lag_seconds 0.25
# HELP culvert_sync_messages_lost_total Messages from the peer missing (sequence gaps not filled by a resend, or still in flight).
# TYPE culvert_sync_messages_lost_total counter
culvert_sync_messages_lost_total 4
# HELP culvert_sync_messages_resent_total Messages sent again for the peer's Nacks.
# TYPE culvert_sync_messages_resent_total counter
culvert_sync_messages_resent_total 9
# HELP culvert_sync_nacks_sent_total Nacks sent, asking the peer for missing messages again.
# TYPE culvert_sync_nacks_sent_total counter
culvert_sync_nacks_sent_total 3
# HELP culvert_sync_queue_drops_total Flow changes lost to full worker queues (the refresh repairs them).
# TYPE culvert_sync_queue_drops_total counter
culvert_sync_queue_drops_total 4
# HELP culvert_vrrp_adverts_rejected_total Advertisements rejected, by reason; vrid "" for those of no group.
# TYPE culvert_vrrp_adverts_rejected_total counter
culvert_vrrp_adverts_rejected_total{reason="ttl",vrid="51"} 3
# HELP culvert_vrrp_priority Priority in use, after tracking.
# TYPE culvert_vrrp_priority gauge
culvert_vrrp_priority{vrid="51"} 150
# HELP culvert_vrrp_state VRRP state of the group: 0 initialize (or fault), 1 backup, 2 master.
# TYPE culvert_vrrp_state gauge
culvert_vrrp_state{vrid="51"} 2
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want), "culvert_sync_backlog", "culvert_sync_lag_seconds",
		"culvert_sync_messages_lost_total", "culvert_sync_messages_resent_total", "culvert_sync_nacks_sent_total", "culvert_sync_queue_drops_total", "culvert_vrrp_adverts_rejected_total",
		"culvert_vrrp_priority", "culvert_vrrp_state"); err != nil {
		t.Error(err)
	}
	if n := testutil.CollectAndCount(c, "culvert_sync_messages_rejected_total"); n != 1 {
		t.Errorf("%d sync reject series, want 1", n)
	}
}
