package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// leaseIDs maps one server's lease ids to L1, L2, ... in order of
// appearance, so that outputs of two servers (whose ids differ) compare.
type leaseIDs struct {
	ids []int64
}

var grantedHexRE = regexp.MustCompile(`lease ([0-9a-f]{16}) granted with`)

// learn records the ids that out shows being granted.
func (l *leaseIDs) learn(out string) {
	for _, m := range grantedHexRE.FindAllStringSubmatch(out, -1) {
		id, err := strconv.ParseUint(m[1], 16, 64)
		if err == nil {
			l.add(int64(id))
		}
	}
	var js struct{ ID int64 }
	if strings.HasPrefix(strings.TrimSpace(out), "{") && json.Unmarshal([]byte(out), &js) == nil && js.ID != 0 &&
		strings.Contains(out, `"TTL"`) {
		l.add(js.ID)
	}
}

func (l *leaseIDs) add(id int64) {
	for _, x := range l.ids {
		if x == id {
			return
		}
	}
	l.ids = append(l.ids, id)
}

// hex is lease n (1-based) as etcdctl takes it.
func (l *leaseIDs) hex(n int) string {
	if n < 1 || n > len(l.ids) {
		return fmt.Sprintf("no-lease-L%d", n)
	}
	return fmt.Sprintf("%x", l.ids[n-1])
}

// norm replaces every known id, in hex (%016x and %x) and in decimal, by Ln.
func (l *leaseIDs) norm(s string) string {
	for i, id := range l.ids {
		name := fmt.Sprintf("L%d", i+1)
		for _, form := range []string{fmt.Sprintf("%016x", id), fmt.Sprintf("%x", id), strconv.FormatInt(id, 10)} {
			s = regexp.MustCompile(`\b`+form+`\b`).ReplaceAllString(s, name)
		}
	}
	return s
}

var leaseArgRE = regexp.MustCompile(`\{L(\d+)\}`)

// args substitutes {Ln} in args with this server's lease n.
func (l *leaseIDs) args(args []string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		out[i] = leaseArgRE.ReplaceAllStringFunc(a, func(m string) string {
			n, _ := strconv.Atoi(leaseArgRE.FindStringSubmatch(m)[1])
			return l.hex(n)
		})
	}
	return out
}

var (
	remainingRE = regexp.MustCompile(`granted with TTL\((\d+)s\), remaining\((\d+)s\)`)
	ttlJSONRE   = regexp.MustCompile(`"ttl":(-?\d+),"granted-ttl":(\d+)`)
	keysRE      = regexp.MustCompile(`attached keys\(\[([^\]]*)\]\)`)
)

// normTTL blanks a remaining TTL that is within 2 s of the granted one, or
// 1/60 of it for long ones (a timing detail: a loaded CI host took 3 s
// between a 600 s grant and its timetolive), and leaves any other as it
// is, so that it shows up; it sorts the attached keys, which etcd lists in
// map order.
func normTTL(s string) string {
	s = remainingRE.ReplaceAllStringFunc(s, func(m string) string {
		sm := remainingRE.FindStringSubmatch(m)
		g, _ := strconv.ParseInt(sm[1], 10, 64)
		r, _ := strconv.ParseInt(sm[2], 10, 64)
		if g > 0 && g-r >= 0 && g-r <= max(2, g/60) {
			return fmt.Sprintf("granted with TTL(%ds), remaining(~%ds)", g, g)
		}
		return m
	})
	s = ttlJSONRE.ReplaceAllStringFunc(s, func(m string) string {
		sm := ttlJSONRE.FindStringSubmatch(m)
		r, _ := strconv.ParseInt(sm[1], 10, 64)
		g, _ := strconv.ParseInt(sm[2], 10, 64)
		if g > 0 && g-r >= 0 && g-r <= max(2, g/60) {
			return fmt.Sprintf(`"ttl":~%d,"granted-ttl":%d`, g, g)
		}
		return m
	})
	return keysRE.ReplaceAllStringFunc(s, func(m string) string {
		ks := strings.Fields(keysRE.FindStringSubmatch(m)[1])
		sort.Strings(ks)
		return "attached keys([" + strings.Join(ks, " ") + "])"
	})
}

// headerRevision is the header revision of etcdctl's `-w json` output.
func headerRevision(t *testing.T, out string) int64 {
	t.Helper()
	var js struct {
		Header struct{ Revision int64 } `json:"header"`
	}
	if err := json.Unmarshal([]byte(out), &js); err != nil {
		t.Errorf("not json %q: %v", out, err)
	}
	return js.Header.Revision
}

// TestLeaseEtcdctl runs one scripted etcdctl lease session against
// MetaStore and against the reference etcd and requires the same outputs,
// lease ids normalised to L1, L2, ... in order of grant.
func TestLeaseEtcdctl(t *testing.T) {
	t.Parallel()
	ms := StartMetaStore(t)
	ref := StartEtcd(t)
	msIDs, refIDs := &leaseIDs{}, &leaseIDs{}

	a := func(args ...string) []string { return args }
	steps := [][]string{
		// L1..L3 have the minimum TTL: revoked at once, before they expire.
		a("lease", "grant", "1"),
		a("lease", "revoke", "{L1}"),
		a("lease", "grant", "0"),
		a("lease", "revoke", "{L2}"),
		a("lease", "grant", "--", "-5"),
		a("lease", "timetolive", "{L3}"),
		a("lease", "revoke", "{L3}"),
		a("lease", "grant", "60"),         // L4
		a("lease", "grant", "9000000000"), // L5
		a("lease", "grant", "9000000001"),
		a("lease", "grant", "30", "-w", "json"), // L6
		a("lease", "list"),
		a("lease", "list", "-w", "json"),
		a("put", "k1", "v1", "--lease={L4}"),
		a("put", "k3", "v3", "--lease={L4}"),
		a("put", "k2", "v2", "--lease={L4}"),
		a("put", "k0", "v0", "--lease={L5}"),
		a("put", "k9", "v9"),
		a("lease", "timetolive", "{L4}"),
		a("lease", "timetolive", "{L4}", "--keys"),
		a("lease", "timetolive", "{L5}", "--keys"),
		a("lease", "timetolive", "{L6}", "--keys"),
		a("lease", "timetolive", "{L4}", "-w", "json"),
		a("lease", "timetolive", "{L6}", "--keys", "-w", "json"),
		a("lease", "keep-alive", "--once", "{L4}"),
		a("lease", "keep-alive", "--once", "{L5}"),
		a("lease", "keep-alive", "--once", "{L4}", "-w", "json"),
		a("put", "k5", "v5", "--lease=1234abcd"),
		a("put", "k1", "v1b", "--ignore-lease"),
		a("put", "nokey", "v", "--ignore-lease"),
		a("get", "k1", "-w", "json"),
		a("get", "k", "--prefix", "-w", "json"), // before revoke
		a("lease", "revoke", "{L4}"),
		a("get", "k", "--prefix", "-w", "json"), // after revoke
		a("get", "k", "--prefix"),
		a("lease", "revoke", "{L4}"),
		a("lease", "revoke", "1234abcd"),
		a("lease", "timetolive", "{L4}"),
		a("lease", "timetolive", "{L4}", "--keys"),
		a("lease", "timetolive", "1234abcd", "-w", "json"),
		a("lease", "keep-alive", "--once", "{L4}"),
		a("lease", "list"),
		a("lease", "revoke", "{L6}"), // no keys: no new revision
		a("get", "k9", "-w", "json"),
		a("del", "k0"),
		a("lease", "timetolive", "{L5}", "--keys"),
		a("lease", "revoke", "{L5}"),
		a("lease", "list"),
		a("get", "", "--prefix", "-w", "json"),
	}
	var msOuts, refOuts []string
	for i, st := range steps {
		mOut, mErr, mE := Etcdctl(t, ms.Endpoint(), msIDs.args(st)...)
		rOut, rErr, rE := Etcdctl(t, ref.Endpoint(), refIDs.args(st)...)
		msIDs.learn(mOut)
		refIDs.learn(rOut)
		msOuts, refOuts = append(msOuts, mOut), append(refOuts, rOut)
		desc := strings.Join(st, " ")
		if (mE == nil) != (rE == nil) {
			t.Errorf("step %d %q: metastore err %v (stdout %q stderr %q), etcd err %v (stdout %q stderr %q)",
				i, desc, mE, mOut, mErr, rE, rOut, rErr)
			continue
		}
		mn, rn := normTTL(msIDs.norm(normIDs(mOut))), normTTL(refIDs.norm(normIDs(rOut)))
		if mn != rn {
			t.Errorf("step %d %q: stdout differs\nmetastore: %s\netcd:      %s", i, desc, mn, rn)
		}
		if testing.Verbose() {
			t.Logf("step %d %q: etcd: %s %s", i, desc, strings.TrimSpace(rn), errText(rErr))
		}
		if rE != nil && msIDs.norm(errText(mErr)) != refIDs.norm(errText(rErr)) {
			t.Errorf("step %d %q: stderr differs\nmetastore: %q\netcd:      %q", i, desc, mErr, rErr)
		}
	}

	// The revoke of L4 deleted k1, k2 and k3 in one revision; the revoke of
	// L6, without keys, made none.
	find := func(args ...string) []int {
		var idx []int
		for i, st := range steps {
			if strings.Join(st, " ") == strings.Join(args, " ") {
				idx = append(idx, i)
			}
		}
		return idx
	}
	for _, side := range []struct {
		name string
		outs []string
	}{{"metastore", msOuts}, {"etcd", refOuts}} {
		gets := find("get", "k", "--prefix", "-w", "json")
		before, after := headerRevision(t, side.outs[gets[0]]), headerRevision(t, side.outs[gets[1]])
		if after != before+1 {
			t.Errorf("%s: revoke of a lease with 3 keys: revision %d -> %d, want +1", side.name, before, after)
		}
		var kvs struct {
			Kvs []struct{ Key string } `json:"kvs"`
		}
		_ = json.Unmarshal([]byte(side.outs[gets[1]]), &kvs)
		if len(kvs.Kvs) != 2 { // k0 (L5) and k9
			t.Errorf("%s: after revoke: %s", side.name, side.outs[gets[1]])
		}
		if r := headerRevision(t, side.outs[find("get", "k9", "-w", "json")[0]]); r != after {
			t.Errorf("%s: revoke of a lease without keys: revision %d -> %d, want unchanged", side.name, after, r)
		}
	}
}

// TestLeaseEtcdctlKeepAlive: `etcdctl lease keep-alive` (not --once) keeps
// a lease alive and ends when the lease is revoked under it.
func TestLeaseEtcdctlKeepAlive(t *testing.T) {
	t.Parallel()
	servers := []*Server{StartMetaStore(t), StartEtcd(t)}
	outs := make([]string, len(servers))
	var wg sync.WaitGroup
	for i, s := range servers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			outs[i] = etcdctlKeepAliveUntilRevoked(t, s)
		}()
	}
	wg.Wait()
	if outs[0] != outs[1] {
		t.Errorf("etcdctl lease keep-alive until revoked:\nmetastore: %s\netcd:      %s", outs[0], outs[1])
	}
	if !strings.Contains(outs[1], "expired or revoked") {
		t.Errorf("etcd: %s", outs[1])
	}
	t.Logf("etcd: %s", outs[1])
}

// etcdctlKeepAliveUntilRevoked grants a lease, keeps it alive with etcdctl
// and revokes it after three keep-alives; it returns etcdctl's output
// (repeated lines once) and exit.
func etcdctlKeepAliveUntilRevoked(t *testing.T, s *Server) string {
	ids := &leaseIDs{}
	out, stderr, err := Etcdctl(t, s.Endpoint(), "lease", "grant", "3")
	if err != nil {
		return fmt.Sprintf("lease grant: %v %s", err, stderr)
	}
	ids.learn(out)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, RefBin(t, "etcdctl"), "--endpoints="+s.Endpoint(), "lease", "keep-alive", ids.hex(1))
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err.Error()
	}
	var errBuf strings.Builder
	cmd.Stderr = &errBuf
	if err := cmd.Start(); err != nil {
		return err.Error()
	}
	sc := bufio.NewScanner(stdout)
	var lines []string
	for sc.Scan() {
		lines = append(lines, ids.norm(sc.Text()))
		if len(lines) == 3 { // three keep-alives, about a second apart
			if o, e, err := Etcdctl(t, s.Endpoint(), "lease", "revoke", ids.hex(1)); err != nil {
				lines = append(lines, fmt.Sprintf("revoke: %v %s %s", err, o, e))
			}
		}
	}
	err = cmd.Wait()
	var dedup []string
	for _, l := range lines {
		if len(dedup) == 0 || dedup[len(dedup)-1] != l {
			dedup = append(dedup, l)
		}
	}
	return fmt.Sprintf("%s\nexit: %v\nstderr: %s", strings.Join(dedup, "\n"), err, errText(errBuf.String()))
}
