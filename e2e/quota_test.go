package e2e

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
)

var memberIDField = regexp.MustCompile(`memberID:[0-9]+`)

// TestQuotaScenario runs etcd's NOSPACE routine with the real etcdctl on
// both servers with a small --quota-backend-bytes: fill until writes are
// refused with "database space exceeded" (and the alarm is raised), check
// that reads, deletes and compaction still work and writes, txns with
// writes and lease grants do not, then reclaim (delete, compact, defrag),
// disarm and write again. How many puts fit differs (the engines store
// differently); every answer after that must be etcd's.
func TestQuotaScenario(t *testing.T) {
	const quota = 2 << 20
	value := strings.Repeat("x", 100<<10)
	ms := StartMetaStore(t, WithFlags(fmt.Sprintf("--quota-backend-bytes=%d", quota)))
	ref := StartEtcd(t, WithFlags(fmt.Sprintf("--quota-backend-bytes=%d", quota)))
	for _, srv := range []*Server{ms, ref} {
		full := false
		for i := 0; i < 200 && !full; i++ {
			_, errOut, err := Etcdctl(t, srv.Endpoint(), "put", fmt.Sprintf("k%03d", i), value)
			switch {
			case err == nil:
			case strings.Contains(errOut, "database space exceeded"):
				full = true
			default:
				t.Fatalf("%s: put %d: %v %s", srv.Name, i, err, errOut)
			}
		}
		if !full {
			t.Fatalf("%s: 200 puts of 100 KiB fit in a 2 MiB quota", srv.Name)
		}
	}
	steps := [][]string{
		{"alarm", "list"},
		{"put", "another", "v"},
		{"txn"}, // stdin below: a txn that writes
		{"lease", "grant", "60"},
		{"get", "k000", "--print-value-only=false", "--keys-only"},
		{"get", "k", "--prefix", "--count-only"},
		{"del", "k000"},
		{"endpoint", "health"},
		// Reclaim: delete everything, compact, defragment, disarm.
		{"del", "k", "--prefix"},
		{"compaction", "--physical", "REV"},
		{"defrag"},
		{"alarm", "disarm"},
		{"alarm", "list"},
		{"put", "after", "v"},
		{"get", "after", "--print-value-only"},
	}
	for i, args := range steps {
		var outs [2]string
		for j, srv := range []*Server{ms, ref} {
			a := append([]string(nil), args...)
			stdin := ""
			if a[0] == "txn" {
				stdin = "\nput t v\n\n"
			}
			if a[0] == "compaction" {
				a[2] = fmt.Sprint(currentRev(t, srv))
			}
			out, errOut, err := etcdctlStdin(t, srv.Endpoint(), stdin, a...)
			switch a[0] {
			case "endpoint", "defrag":
				out = fmt.Sprint(strings.Contains(out, "is healthy") || strings.Contains(out, "Finished defragmenting"))
			case "compaction":
				out = fmt.Sprint(strings.HasPrefix(out, "compacted revision"))
			case "lease":
				out = fmt.Sprint(strings.Contains(out, "granted"))
			case "alarm":
				out = memberIDField.ReplaceAllString(out, "memberID:SELF")
			}
			if strings.Join(a, " ") == "del k --prefix" {
				out = fmt.Sprint("deleted some: ", out != "0\n") // how many fit differs
			}
			outs[j] = fmt.Sprintf("%s | %s | %v", normIDs(out), errText(errOut), err != nil)
		}
		if outs[0] != outs[1] {
			t.Errorf("step %d %v differs\netcd:      %s\nmetastore: %s", i, args, outs[1], outs[0])
		}
	}
}

// currentRev is the server's current revision, from etcdctl.
func currentRev(t *testing.T, s *Server) int64 {
	t.Helper()
	out, errOut, err := Etcdctl(t, s.Endpoint(), "get", "x", "-w", "fields")
	if err != nil {
		t.Fatalf("%v %s", err, errOut)
	}
	var rev int64
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, `"Revision"`) {
			fmt.Sscanf(strings.TrimSpace(strings.SplitN(line, ":", 2)[1]), "%d", &rev)
		}
	}
	if rev == 0 {
		t.Fatalf("no revision in %q", out)
	}
	return rev
}

// TestQuotaReclaimedWithoutDefrag: MetaStore measures the quota on the
// data compaction has not removed, so after NOSPACE, deleting and
// compacting are enough — disarm and write again with no defragmentation
// (etcd needs one: its file does not shrink).
func TestQuotaReclaimedWithoutDefrag(t *testing.T) {
	ms := StartMetaStore(t, WithFlags(fmt.Sprintf("--quota-backend-bytes=%d", 2<<20)))
	value := strings.Repeat("x", 100<<10)
	full := false
	for i := 0; i < 200 && !full; i++ {
		if _, errOut, err := Etcdctl(t, ms.Endpoint(), "put", fmt.Sprintf("k%03d", i), value); err != nil {
			if !strings.Contains(errOut, "database space exceeded") {
				t.Fatalf("put %d: %v %s", i, err, errOut)
			}
			full = true
		}
	}
	if !full {
		t.Fatal("never hit the quota")
	}
	for _, args := range [][]string{
		{"del", "k", "--prefix"},
		{"compaction", "--physical", "REV"},
		{"alarm", "disarm"},
		{"put", "after", value},
	} {
		if args[0] == "compaction" {
			args[2] = fmt.Sprint(currentRev(t, ms)) // after the delete
		}
		if out, errOut, err := Etcdctl(t, ms.Endpoint(), args...); err != nil {
			t.Fatalf("%v: %v %s%s", args, err, out, errOut)
		}
	}
	if out, _, _ := Etcdctl(t, ms.Endpoint(), "alarm", "list"); out != "" {
		t.Fatalf("alarms after reclaiming: %q", out)
	}
}
