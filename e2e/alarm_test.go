package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/grpc/status"
)

// TestAlarms drives the same alarm script through raw gRPC against
// MetaStore and the reference etcd: activate/deactivate/get answers,
// NOSPACE refusing writes but not reads or deletes, CORRUPT refusing
// applies, and etcdctl's alarm list / disarm / endpoint health views.
func TestAlarms(t *testing.T) {
	ms := StartMetaStore(t)
	ref := StartEtcd(t)
	run := func(s *Server) []string {
		cli := s.Client(t)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		kv, mt, ls := pb.NewKVClient(cli.ActiveConnection()), pb.NewMaintenanceClient(cli.ActiveConnection()), pb.NewLeaseClient(cli.ActiveConnection())
		st, err := mt.Status(ctx, &pb.StatusRequest{})
		if err != nil {
			t.Fatal(err)
		}
		self := st.Header.MemberId
		var out []string
		note := func(what string, resp fmt.Stringer, err error) {
			if err != nil {
				s := status.Convert(err)
				out = append(out, fmt.Sprintf("%s: error %s %q", what, s.Code(), s.Message()))
				return
			}
			text := strings.ReplaceAll(resp.String(), fmt.Sprint(self), "SELF")
			out = append(out, what+": "+normIDs(strings.Join(strings.Fields(text), " ")))
		}
		alarm := func(what string, action pb.AlarmRequest_AlarmAction, member uint64, typ pb.AlarmType) {
			r, err := mt.Alarm(ctx, &pb.AlarmRequest{Action: action, MemberID: member, Alarm: typ})
			if r != nil {
				r.Header = nil
			}
			note(what, r, err)
		}
		put := func(what, k string) {
			r, err := kv.Put(ctx, &pb.PutRequest{Key: []byte(k), Value: []byte("v")})
			if r != nil {
				r.Header = nil
			}
			note(what, r, err)
		}
		put("put before", "a")
		alarm("get none", pb.AlarmRequest_GET, 0, pb.AlarmType_NONE)
		alarm("activate none", pb.AlarmRequest_ACTIVATE, self, pb.AlarmType_NONE)
		alarm("deactivate inactive", pb.AlarmRequest_DEACTIVATE, self, pb.AlarmType_NOSPACE)
		alarm("activate nospace", pb.AlarmRequest_ACTIVATE, self, pb.AlarmType_NOSPACE)
		alarm("activate nospace again", pb.AlarmRequest_ACTIVATE, self, pb.AlarmType_NOSPACE)
		alarm("get nospace", pb.AlarmRequest_GET, 0, pb.AlarmType_NOSPACE)
		alarm("get corrupt", pb.AlarmRequest_GET, 0, pb.AlarmType_CORRUPT)
		put("put under nospace", "b")
		_, err = ls.LeaseGrant(ctx, &pb.LeaseGrantRequest{ID: 5, TTL: 60})
		note("lease grant under nospace", &pb.LeaseGrantResponse{}, err)
		rr, err := kv.Range(ctx, &pb.RangeRequest{Key: []byte("a")})
		note("range under nospace", &pb.RangeResponse{Count: rr.GetCount()}, err)
		tr, err := kv.Txn(ctx, &pb.TxnRequest{Success: []*pb.RequestOp{{Request: &pb.RequestOp_RequestRange{RequestRange: &pb.RangeRequest{Key: []byte("a")}}}}})
		note("read-only txn under nospace", &pb.TxnResponse{Succeeded: tr.GetSucceeded()}, err)
		_, err = kv.Txn(ctx, &pb.TxnRequest{Success: []*pb.RequestOp{{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: []byte("c")}}}}})
		note("writing txn under nospace", &pb.TxnResponse{}, err)
		dr, err := kv.DeleteRange(ctx, &pb.DeleteRangeRequest{Key: []byte("a")})
		note("delete under nospace", &pb.DeleteRangeResponse{Deleted: dr.GetDeleted()}, err)
		alarm("deactivate nospace", pb.AlarmRequest_DEACTIVATE, self, pb.AlarmType_NOSPACE)
		put("put after", "b")
		alarm("activate corrupt", pb.AlarmRequest_ACTIVATE, self, pb.AlarmType_CORRUPT)
		put("put under corrupt", "c")
		_, err = kv.Compact(ctx, &pb.CompactionRequest{Revision: 2})
		note("compact under corrupt", &pb.CompactionResponse{}, err)
		alarm("get all", pb.AlarmRequest_GET, 0, pb.AlarmType_NONE)
		o, e, _ := Etcdctl(t, s.Endpoint(), "endpoint", "health")
		out = append(out, fmt.Sprint("endpoint health: ", strings.Contains(o+e, "is healthy")))
		alarm("deactivate corrupt", pb.AlarmRequest_DEACTIVATE, self, pb.AlarmType_CORRUPT)
		alarm("activate nospace for member 7", pb.AlarmRequest_ACTIVATE, 7, pb.AlarmType_NOSPACE)
		o, _, _ = Etcdctl(t, s.Endpoint(), "alarm", "list")
		out = append(out, "etcdctl alarm list: "+o)
		o, _, _ = Etcdctl(t, s.Endpoint(), "alarm", "disarm")
		out = append(out, "etcdctl alarm disarm: "+o)
		put("put after disarm", "d")
		return out
	}
	got, want := run(ms), run(ref)
	t.Logf("etcd:\n%s", strings.Join(want, "\n"))
	for i := range want {
		if i >= len(got) || got[i] != want[i] {
			t.Fatalf("step %d differs\netcd:      %s\nmetastore: %s\nall etcd steps:\n%s", i, want[i], at(got, i), strings.Join(want, "\n"))
		}
	}
}

func at(s []string, i int) string {
	if i < len(s) {
		return s[i]
	}
	return "(missing)"
}

// An alarm is replicated state: it is still active after kill -9.
func TestAlarmSurvivesRestart(t *testing.T) {
	ms := StartMetaStore(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	mt := pb.NewMaintenanceClient(ms.Client(t).ActiveConnection())
	if _, err := mt.Alarm(ctx, &pb.AlarmRequest{Action: pb.AlarmRequest_ACTIVATE, MemberID: 1, Alarm: pb.AlarmType_NOSPACE}); err != nil {
		t.Fatal(err)
	}
	ms.Kill()
	ms.Restart(t)
	cli := ms.Client(t)
	if _, err := cli.Put(ctx, "k", "v"); err == nil || !strings.Contains(err.Error(), "database space exceeded") {
		t.Fatalf("put after restart with NOSPACE active: %v", err)
	}
	if o, _, _ := Etcdctl(t, ms.Endpoint(), "alarm", "disarm"); !strings.Contains(o, "alarm:NOSPACE") {
		t.Fatalf("disarm after restart: %q", o)
	}
	if _, err := cli.Put(ctx, "k", "v"); err != nil {
		t.Fatalf("put after disarm: %v", err)
	}
}
