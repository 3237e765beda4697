package transport

import (
	"net/http"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.etcd.io/raft/v3/raftpb"

	"github.com/metastore/metastore/testkit"
)

// sample is family name's sample with these labels (a counter's or
// gauge's value, a histogram's count), -1 when there is none.
func sample(t *testing.T, reg prometheus.Gatherer, name string, labels map[string]string) float64 {
	t.Helper()
	var pairs []string
	for k, v := range labels {
		pairs = append(pairs, k, v)
	}
	if v, ok := testkit.Gather(t, reg).Value(name, pairs...); ok {
		return v
	}
	return -1
}

// Two members talking: bytes counted on both sides and per peer (hex ids,
// as etcd), the stream shown active, both known, round trips measured by
// the probe; a stream lost when the peer goes away is a disconnection.
func TestMetricsPeers(t *testing.T) {
	a, b := newMember(t, 0xa1, 7), newMember(t, 0xb2, 7)
	reg := testkit.Registry(t, NewCollector(a.tr))
	to, from := map[string]string{"To": "b2"}, map[string]string{"From": "a1"}
	local := func(remote string) map[string]string { return map[string]string{"Local": "a1", "Remote": remote} }
	if got := sample(t, reg, "etcd_network_known_peers", local("a1")); got != 1 {
		t.Fatalf("known_peers{a1,a1} = %v: a member knows itself", got)
	}
	sent0, recv0 := max(0, sample(t, reg, "etcd_network_peer_sent_bytes_total", to)), max(0, sample(t, reg, "etcd_network_peer_received_bytes_total", from))

	a.tr.AddPeer(0xb2, []string{b.url})
	const n = 100
	sendPaced(t, a, 0xb2, 0, n, 10, 100)
	eventually(t, 5*time.Second, "delivered", func() bool { return len(b.deliveredCopy()) == n })
	sent := sample(t, reg, "etcd_network_peer_sent_bytes_total", to) - sent0
	recv := sample(t, reg, "etcd_network_peer_received_bytes_total", from) - recv0
	if sent < n*100 || recv < n*100 {
		t.Errorf("sent %v bytes, received %v, for %d messages of 100 bytes of data", sent, recv, n)
	}
	if got := sample(t, reg, "etcd_network_active_peers", local("b2")); got != 1 {
		t.Errorf("active_peers{a1,b2} = %v", got)
	}
	if got := sample(t, reg, "etcd_network_known_peers", local("b2")); got != 1 {
		t.Errorf("known_peers{a1,b2} = %v", got)
	}
	eventually(t, 5*time.Second, "a round trip measured", func() bool {
		return sample(t, reg, "etcd_network_peer_round_trip_time_seconds", to) > 0
	})

	lost := sample(t, reg, "etcd_network_disconnected_peers_total", local("b2"))
	b.srv.CloseClientConnections()
	b.srv.Close()
	eventually(t, 5*time.Second, "the lost stream counted", func() bool {
		return sample(t, reg, "etcd_network_disconnected_peers_total", local("b2")) == lost+1 &&
			sample(t, reg, "etcd_network_active_peers", local("b2")) == 0
	})
}

// Messages a peer's queue cannot take are send failures; a malformed
// stream is a receive failure.
func TestMetricsFailures(t *testing.T) {
	a, b := newMember(t, 0xa3, 7), newMember(t, 0xb4, 7)
	a.tr.AddPeer(0xdead, []string{"http://127.0.0.1:1"})
	failed := testutil.ToFloat64(sentFailures.WithLabelValues("dead"))
	msgs := make([]*raftpb.Message, queueSize+10)
	for i := range msgs {
		msgs[i] = app(0xa3, 0xdead, uint64(i+1), 0)
	}
	a.tr.Send(msgs)
	if got := testutil.ToFloat64(sentFailures.WithLabelValues("dead")) - failed; got < 10 {
		t.Errorf("sent_failures{To=dead} grew by %v with a full queue", got)
	}

	recv := testutil.ToFloat64(recvFailures.WithLabelValues("a3"))
	good, _ := appendFrame(nil, app(0xa3, 0xb4, 1, 0))
	if code, _ := rawPost(t, b.url+pathStream, 7, 0xa3, 0xb4, append(good, 5, 0xff, 0xff, 0xff, 0xff, 0xff)); code != http.StatusOK {
		t.Fatalf("status %d", code)
	}
	eventually(t, 5*time.Second, "the bad stream counted", func() bool {
		return testutil.ToFloat64(recvFailures.WithLabelValues("a3")) == recv+1
	})
}
