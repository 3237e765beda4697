package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"
)

var (
	idFieldRE     = regexp.MustCompile(`"(cluster_id|member_id|raft_term)":[0-9]+`)
	idFieldsOutRE = regexp.MustCompile(`"(ClusterID|MemberID|RaftTerm)" : [0-9]+`)
)

// normIDs blanks the header fields that differ between two clusters.
func normIDs(s string) string {
	s = idFieldRE.ReplaceAllString(s, `"$1":0`)
	return idFieldsOutRE.ReplaceAllString(s, `"$1" : 0`)
}

func etcdctlStdin(t *testing.T, endpoint, stdin string, args ...string) (string, string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, RefBin(t, "etcdctl"), append([]string{"--endpoints=" + endpoint}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	return o.String(), e.String(), err
}

// TestEtcdctl runs one scripted etcdctl session against MetaStore and
// against the reference etcd and requires the same outputs.
func TestEtcdctl(t *testing.T) {
	ms := StartMetaStore(t)
	ref := StartEtcd(t)

	type step struct {
		stdin string
		args  []string
	}
	a := func(args ...string) step { return step{args: args} }
	txn := func(stdin string, args ...string) step {
		return step{stdin: stdin, args: append([]string{"txn"}, args...)}
	}
	steps := []step{
		a("put", "foo", "bar"),
		a("put", "foo1", "bar1"),
		a("put", "foo2", "bar2"),
		a("put", "zoo", "zebra"),
		a("put", "foo", "baz", "--prev-kv"),
		a("get", "foo"),
		a("get", "foo", "-w", "json"),
		a("get", "missing", "-w", "json"),
		a("get", "foo", "--prefix"),
		a("get", "foo", "--prefix", "-w", "json"),
		a("get", "foo1", "--from-key"),
		a("get", "foo", "--prefix", "--limit", "2"),
		a("get", "foo", "--prefix", "--limit", "2", "-w", "json"),
		a("get", "foo", "--rev", "2"),
		a("get", "foo", "--rev", "2", "-w", "json"),
		a("get", "foo", "--prefix", "--keys-only"),
		a("get", "foo", "--prefix", "--print-value-only"),
		a("get", "foo", "--prefix", "--count-only", "-w", "fields"),
		a("get", "", "--prefix", "--sort-by=MODIFY", "--order=DESCEND"),
		a("get", "", "--from-key", "--sort-by=VALUE", "--order=ASCEND", "-w", "json"),
		a("get", "foo", "foo3"),
		a("get", "foo", "-w", "fields"),
		txn("value(\"foo\") = \"baz\"\n\nput foo qux\nget foo1\n\nput foo never\n\n"),
		txn("mod(\"foo\") > \"100\"\nversion(\"zoo\") = \"1\"\n\nput no no\n\ndel zoo\nget foo\n\n", "-w", "json"),
		txn("create(\"missing\") = \"0\"\n\nput a 1\nput b 2\n\n\n"),
		a("del", "a"),
		a("del", "missing"),
		a("del", "foo", "--prefix", "--prev-kv"),
		a("del", "b", "--prev-kv", "-w", "json"),
		a("get", "", "--prefix"),
		a("put", "c1", "v1"),
		a("put", "c2", "v2"),
		a("compact", "5"),
		a("get", "foo", "--rev", "4"),
		a("get", "foo", "--rev", "5"),
		a("compact", "8", "--physical"),
		a("compact", "7"),
		a("get", "c", "--prefix", "--rev", "100"),
		a("get", "", "--prefix", "-w", "json"),
	}
	var errSteps []string
	for i, st := range steps {
		mOut, mErr, mE := etcdctlStdin(t, ms.Endpoint(), st.stdin, st.args...)
		rOut, rErr, rE := etcdctlStdin(t, ref.Endpoint(), st.stdin, st.args...)
		desc := strings.Join(st.args, " ")
		if (mE == nil) != (rE == nil) {
			t.Errorf("step %d %q: metastore err %v (stderr %q), etcd err %v (stderr %q)", i, desc, mE, mErr, rE, rErr)
			continue
		}
		if normIDs(mOut) != normIDs(rOut) {
			t.Errorf("step %d %q: stdout differs\nmetastore: %s\netcd:      %s", i, desc, mOut, rOut)
		}
		if rE != nil {
			errSteps = append(errSteps, desc+" -> "+errText(rErr))
			// Error text: compare the message etcdctl prints (without timestamps).
			if errText(mErr) != errText(rErr) {
				t.Errorf("step %d %q: stderr differs\nmetastore: %q\netcd:      %q", i, desc, mErr, rErr)
			}
		}
	}

	// The session must exercise the compaction and future-revision errors.
	joined := strings.Join(errSteps, "\n")
	for _, want := range []string{"required revision has been compacted", "required revision is a future revision"} {
		if !strings.Contains(joined, want) {
			t.Errorf("no step failed with %q; failing steps:\n%s", want, joined)
		}
	}
	t.Logf("failing steps (same on both):\n%s", joined)

	// endpoint status: MetaStore is its own leader, and speaks etcd 3.7.3.
	out, stderr, err := Etcdctl(t, ms.Endpoint(), "endpoint", "status", "-w", "json")
	if err != nil {
		t.Fatalf("endpoint status: %v %s", err, stderr)
	}
	var sts []struct {
		Endpoint string
		Status   struct {
			Header struct {
				MemberID uint64 `json:"member_id"`
				Revision int64  `json:"revision"`
			} `json:"header"`
			Version string `json:"version"`
			Leader  uint64 `json:"leader"`
			DbSize  int64  `json:"dbSize"`
		}
	}
	if err := json.Unmarshal([]byte(out), &sts); err != nil || len(sts) != 1 {
		t.Fatalf("endpoint status json %q: %v", out, err)
	}
	st := sts[0].Status
	if st.Leader == 0 || st.Leader != st.Header.MemberID {
		t.Errorf("endpoint status: leader %d, member id %d; want equal, non-zero", st.Leader, st.Header.MemberID)
	}
	if st.Version != "3.7.3" {
		t.Errorf("endpoint status: version %q, want 3.7.3", st.Version)
	}
	if st.DbSize <= 0 {
		t.Errorf("endpoint status: dbSize %d", st.DbSize)
	}

	// `etcdctl version` is client-only; it works without a server.
	out, _, err = Etcdctl(t, ms.Endpoint(), "version")
	if err != nil || !strings.Contains(out, "etcdctl version:") {
		t.Errorf("etcdctl version: %q %v", out, err)
	}
}

// errText keeps etcdctl's "Error: ..." lines, which carry the server error.
func errText(stderr string) string {
	var keep []string
	for _, line := range strings.Split(stderr, "\n") {
		if i := strings.Index(line, "Error:"); i >= 0 {
			keep = append(keep, line[i:])
		}
	}
	return strings.Join(keep, "\n")
}
