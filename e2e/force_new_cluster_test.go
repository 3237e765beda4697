package e2e

import (
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// fieldsRE matches what etcdctl -w fields prints that differs between
// kinds and runs: the raft term (elections after the forced restart need
// not take the same terms) and ids, which it prints in decimal.
var fieldsRE = regexp.MustCompile(`"(RaftTerm|ClusterID|MemberID|Lease)" : [1-9][0-9]*`)

// TestForceNewCluster (issue 20): etcd's disaster recovery. A three-member
// cluster loses two members (killed, for good); the survivor restarted
// with --force-new-cluster is a one-member cluster with the same cluster
// id and all its data (keys at the same revisions, the lease with its
// key, the user), still after a restart without the flag, and grows
// again with member add. MetaStore's transcript must equal etcd's.
func TestForceNewCluster(t *testing.T) {
	var tr memberTranscript
	eachKind(t, func(t *testing.T, kind Kind) {
		start := time.Now()
		defer func() { t.Logf("%s: %v", kind, time.Since(start).Round(time.Millisecond)) }()
		servers := StartCluster(t, kind, 3)
		waitLeader(t, servers, 10*time.Second)
		all := Endpoints(servers)
		byName, cluster := memberIDs(t, servers[0])
		ids := newIDNames(kind, byName, cluster)
		norm := func(s string) string { return fieldsRE.ReplaceAllString(ids.norm(kind, s), `"$1" : <n>`) }
		rec := func(step, out string) { tr.add(kind, step, out) }
		ctl := func(eps []string, args ...string) {
			t.Helper()
			if out := ctlOut(t, eps, args...); strings.HasPrefix(out, "ERR") {
				t.Fatalf("etcdctl %v: %s", args, out)
			}
		}
		for _, kv := range [][2]string{{"a", "1"}, {"b", "2"}, {"c", "3"}, {"a", "4"}} {
			ctl(all, "put", kv[0], kv[1])
		}
		ctl(all, "del", "b")
		ctl(all, "user", "add", "alice", "--new-user-password=secret")
		grant := ctlOut(t, all, "lease", "grant", "600")
		lease := strings.Fields(grant)
		if len(lease) < 2 || lease[0] != "lease" {
			t.Fatalf("lease grant: %q", grant)
		}
		ids[strings.TrimLeft(lease[1], "0")] = "<lease>"
		ctl(all, "put", "l", "v", "--lease="+lease[1])

		survivor := servers[0]
		sep := []string{survivor.Endpoint()}
		// The survivor has applied everything before the others are lost.
		waitOut(t, func(s string) bool { return s == "l\nv\n" }, norm, sep, "get", "l", "--consistency=s")
		servers[1].Kill()
		servers[2].Kill()
		survivor.Stop()

		survivor.cfg.flags = append(survivor.cfg.flags, "--force-new-cluster")
		RestartMembers(t, survivor)
		check := func(when string) {
			t.Helper()
			if _, id := memberIDs(t, survivor); id != cluster {
				t.Fatalf("cluster id %x %s, was %x", id, when, cluster)
			}
			rec("member list "+when, sortLines(norm(ctlOut(t, sep, "member", "list"))))
			rec("get --prefix "+when, norm(ctlOut(t, sep, "get", "", "--prefix", "-w", "fields")))
			rec("lease timetolive --keys "+when, remainRE.ReplaceAllString(norm(ctlOut(t, sep, "lease", "timetolive", lease[1], "--keys")), "remaining(<s>)"))
			rec("user get alice "+when, norm(ctlOut(t, sep, "user", "get", "alice")))
		}
		check("(forced)")
		rec("put (forced)", norm(ctlOut(t, sep, "put", "d", "5")))

		survivor.Stop()
		survivor.cfg.flags = slices.DeleteFunc(survivor.cfg.flags, func(f string) bool { return f == "--force-new-cluster" })
		RestartMembers(t, survivor)
		check("(flag removed)")

		added := NewMember(t, kind, string(kind)+"-c4")
		rec("member add", sortLines(norm(ctlRetry(t, sep, "member", "add", added.Name, "--peer-urls="+added.PeerURL()))))
		added.Join(t, []*Server{survivor})
		aep := []string{added.Endpoint()}
		rec("get d via the added member", waitOut(t, func(s string) bool { return s == "d\n5\n" }, norm, aep, "get", "d", "--consistency=s"))
		// Named in the list once it has published its name.
		waitOut(t, func(s string) bool { return !strings.Contains(s, "unstarted") }, norm, sep, "member", "list")
		byName, _ = memberIDs(t, survivor)
		ids = newIDNames(kind, byName, cluster)
		ids[strings.TrimLeft(lease[1], "0")] = "<lease>"
		rec("member list (grown)", sortLines(norm(ctlOut(t, sep, "member", "list"))))
		rec("put via the added member", norm(ctlOut(t, aep, "put", "e", "6")))
	})
	tr.compare(t)
}
