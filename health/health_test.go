package health

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/metastore/metastore/testkit"
)

// fakeMember is a member whose state a test sets.
type fakeMember struct {
	alarms      []*pb.AlarmMember
	alarmsErr   error // what reading the alarms fails with
	leader      bool
	learner     bool
	linearErr   error // what a linearizable read fails with
	serialErr   error // what a serializable read fails with
	serialReads int
}

func (m *fakeMember) Alarms() ([]*pb.AlarmMember, error) { return m.alarms, m.alarmsErr }
func (m *fakeMember) HasLeader() bool                    { return m.leader }
func (m *fakeMember) IsLearner() bool                    { return m.learner }
func (m *fakeMember) Read(_ context.Context, serializable bool) error {
	if serializable {
		m.serialReads++
		return m.serialErr
	}
	return m.linearErr
}

func get(t *testing.T, m Member, target string) (int, string) {
	t.Helper()
	mux := http.NewServeMux()
	New(m, time.Second, nil).Register(mux)
	w := httptest.NewRecorder()
	mux.ServeHTTP(w, httptest.NewRequest(http.MethodGet, target, nil))
	return w.Code, w.Body.String()
}

func TestHealth(t *testing.T) {
	nospace := &pb.AlarmMember{MemberID: 1, Alarm: pb.AlarmType_NOSPACE}
	corrupt := &pb.AlarmMember{MemberID: 1, Alarm: pb.AlarmType_CORRUPT}
	diskErr := errors.New("pebble: read error")
	for _, tc := range []struct {
		name   string
		m      fakeMember
		target string
		code   int
		body   string
	}{
		{"healthy", fakeMember{leader: true}, "/health", 200, `{"health":"true","reason":""}`},
		{"no leader", fakeMember{}, "/health", 503, `{"health":"false","reason":"RAFT NO LEADER"}` + "\n"},
		{"no leader, serializable", fakeMember{}, "/health?serializable=true", 200, `{"health":"true","reason":""}`},
		{"nospace", fakeMember{leader: true, alarms: []*pb.AlarmMember{nospace}}, "/health", 503, `{"health":"false","reason":"ALARM NOSPACE"}` + "\n"},
		{"nospace excluded", fakeMember{leader: true, alarms: []*pb.AlarmMember{nospace}}, "/health?exclude=NOSPACE", 200, `{"health":"true","reason":""}`},
		{"kubeadm liveness, nospace, no leader", fakeMember{alarms: []*pb.AlarmMember{nospace}}, "/health?exclude=NOSPACE&serializable=true", 200, `{"health":"true","reason":""}`},
		{"corrupt, nospace excluded", fakeMember{leader: true, alarms: []*pb.AlarmMember{nospace, corrupt}}, "/health?exclude=NOSPACE", 503, `{"health":"false","reason":"ALARM CORRUPT"}` + "\n"},
		{"read fails", fakeMember{leader: true, linearErr: errors.New("etcdserver: request timed out")}, "/health", 503, `{"health":"false","reason":"RANGE ERROR:etcdserver: request timed out"}` + "\n"},
		{"alarms unreadable", fakeMember{leader: true, alarmsErr: diskErr}, "/health?exclude=NOSPACE", 503, `{"health":"false","reason":"ALARM ERROR:pebble: read error"}` + "\n"},
		{"readyz alarms unreadable", fakeMember{leader: true, alarmsErr: diskErr}, "/readyz/data_corruption", 503,
			"[-]data_corruption failed: cannot read alarms: pebble: read error\n\n"},
		{"livez", fakeMember{}, "/livez", 200, "ok\n"},
		{"livez verbose", fakeMember{}, "/livez?verbose", 200, "[+]serializable_read ok\nok\n"},
		{"readyz verbose", fakeMember{leader: true}, "/readyz?verbose", 200,
			"[+]data_corruption ok\n[+]serializable_read ok\n[+]linearizable_read ok\n[+]non_learner ok\nok\n"},
		{"readyz learner", fakeMember{leader: true, learner: true}, "/readyz", 503,
			"[+]data_corruption ok\n[+]serializable_read ok\n[+]linearizable_read ok\n[-]non_learner failed: not supported for learner\n\n"},
		{"readyz learner excluded", fakeMember{leader: true, learner: true}, "/readyz?exclude=non_learner&exclude=nonesuch", 200, "ok\n"},
		{"readyz corrupt", fakeMember{leader: true, alarms: []*pb.AlarmMember{corrupt}}, "/readyz/data_corruption", 503,
			"[-]data_corruption failed: alarm activated: CORRUPT\n\n"},
		{"readyz one check", fakeMember{linearErr: errors.New("etcdserver: leader changed")}, "/readyz/linearizable_read", 503,
			"[-]linearizable_read failed: etcdserver: leader changed\n\n"},
		{"readyz one check verbose", fakeMember{}, "/readyz/serializable_read?verbose", 200, "[+]serializable_read ok\nok\n"},
		{"unknown check", fakeMember{}, "/readyz/nonesuch", 404, "404 page not found\n"},
		{"livez has no corruption check", fakeMember{}, "/livez/data_corruption", 404, "404 page not found\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body := get(t, &tc.m, tc.target)
			if code != tc.code || body != tc.body {
				t.Fatalf("GET %s = %d %q, want %d %q", tc.target, code, body, tc.code, tc.body)
			}
		})
	}
}

func TestHealthOnlyGet(t *testing.T) {
	mux := http.NewServeMux()
	New(&fakeMember{leader: true}, time.Second, nil).Register(mux)
	for _, p := range []string{"/health", "/livez", "/readyz/non_learner"} {
		w := httptest.NewRecorder()
		mux.ServeHTTP(w, httptest.NewRequest(http.MethodPost, p, strings.NewReader("{}")))
		if w.Code != http.StatusMethodNotAllowed || w.Header().Get("Allow") != "GET" {
			t.Fatalf("POST %s = %d (Allow %q), want 405 with Allow: GET", p, w.Code, w.Header().Get("Allow"))
		}
	}
}

// A Check right after the member gets (or loses) a leader answers from
// that, not from the last tick.
func TestGRPCCheckIsCurrent(t *testing.T) {
	clock := testkit.NewFakeClock(time.Unix(0, 0))
	m := &fakeMember{}
	g := FollowGRPC(m, clock, 100*time.Millisecond, nil)
	defer g.Stop()
	check := func() healthpb.HealthCheckResponse_ServingStatus {
		resp, err := g.Check(context.Background(), &healthpb.HealthCheckRequest{})
		if err != nil {
			t.Fatal(err)
		}
		return resp.Status
	}
	m.leader = true // no tick since
	if s := check(); s != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("Check with a leader: %v", s)
	}
	m.leader = false
	if s := check(); s != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Fatalf("Check without a leader: %v", s)
	}
}

func TestGRPCStatusFollowsLeaderAndCorruption(t *testing.T) {
	clock := testkit.NewFakeClock(time.Unix(0, 0))
	m := &fakeMember{}
	g := FollowGRPC(m, clock, 100*time.Millisecond, nil)
	defer g.Stop()
	status := func() healthpb.HealthCheckResponse_ServingStatus {
		resp, err := g.Server.Check(context.Background(), &healthpb.HealthCheckRequest{}) // the last tick's status
		if err != nil {
			t.Fatal(err)
		}
		return resp.Status
	}
	if s := status(); s != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Fatalf("no leader: %v", s)
	}
	m.leader = true
	clock.Advance(100 * time.Millisecond)
	if s := status(); s != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("leader: %v", s)
	}
	m.alarms = []*pb.AlarmMember{{MemberID: 2, Alarm: pb.AlarmType_CORRUPT}}
	clock.Advance(100 * time.Millisecond)
	if s := status(); s != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Fatalf("corrupt: %v", s)
	}
	m.alarms = []*pb.AlarmMember{{MemberID: 2, Alarm: pb.AlarmType_NOSPACE}}
	clock.Advance(100 * time.Millisecond)
	if s := status(); s != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("nospace only: %v", s)
	}
	// A member that cannot read its alarms cannot tell it is not corrupt.
	m.alarmsErr = errors.New("pebble: read error")
	clock.Advance(100 * time.Millisecond)
	if s := status(); s != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Fatalf("alarms unreadable: %v", s)
	}
	m.alarmsErr = nil
	clock.Advance(100 * time.Millisecond)
	if s := status(); s != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("alarms readable again: %v", s)
	}
}
