package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc/metadata"
)

// Passwords of the users of the auth enforcement scenarios.
const (
	rootPW   = "rootpw"
	alicePW  = "alicepw"
	alicePW2 = "alicepw2"
	bobPW    = "bobpw"
)

// authStep is one step of an auth scenario: an etcdctl run or, for fn,
// watch and events, a call through a long-lived clientv3 client.
type authStep struct {
	user  string // --user value ("name:password"); "" runs without credentials
	stdin string
	args  []string
	// wait, when set, kills etcdctl after that long (a watch that keeps
	// watching); otherwise etcdctl must exit by itself within 30s.
	wait time.Duration
	// anyOut compares only whether stdout is empty (member ids, ports,
	// hashes and raft indexes of two clusters differ).
	anyOut bool
	// noLearn: a lease this step grants gets no Ln name (it should not
	// exist, and must not shift the names of the leases after it).
	noLearn bool
	// fn, when set, is run instead of etcdctl: a step through a clientv3
	// client of user kept for the whole scenario (see authSide.client).
	fn     func(ctx context.Context, cli *clientv3.Client) (string, error)
	watch  string // start a watch of this prefix through the client
	events bool   // print what that watch received
	desc   string
}

func (s authStep) String() string {
	u := "(no user)"
	if s.user != "" {
		u = "--user=" + s.user
	}
	if s.fn != nil || s.watch != "" || s.events {
		return "clientv3 " + u + " " + s.desc
	}
	d := u + " " + strings.Join(s.args, " ")
	if s.stdin != "" {
		d += fmt.Sprintf(" <<< %q", s.stdin)
	}
	return d
}

// Step constructors: noCreds runs etcdctl without credentials, asUser(user)
// with them.
func noCreds(args ...string) authStep { return authStep{args: args} }

func asUser(user string) func(args ...string) authStep {
	return func(args ...string) authStep { return authStep{user: user, args: args} }
}

func txnAs(user, stdin string, args ...string) authStep {
	return authStep{user: user, stdin: stdin, args: append([]string{"txn", "--interactive=false"}, args...)}
}

func watchAs(user string, wait time.Duration, args ...string) authStep {
	return authStep{user: user, args: append([]string{"watch"}, args...), wait: wait}
}

// cliStep is a step through user's long-lived clientv3 client.
func cliStep(user, desc string, fn func(ctx context.Context, cli *clientv3.Client) (string, error)) authStep {
	return authStep{user: user, desc: desc, fn: fn}
}

func cliPut(user, k, v string) authStep {
	return cliStep(user, "put "+k+" "+v, func(ctx context.Context, cli *clientv3.Client) (string, error) {
		r, err := cli.Put(ctx, k, v)
		if err != nil {
			return "", err
		}
		return fmt.Sprintf("put at revision %d", r.Header.Revision), nil
	})
}

func cliGet(user, k string) authStep {
	return cliStep(user, "get "+k, func(ctx context.Context, cli *clientv3.Client) (string, error) {
		r, err := cli.Get(ctx, k)
		if err != nil {
			return "", err
		}
		var b strings.Builder
		for _, kv := range r.Kvs {
			fmt.Fprintf(&b, "%s=%s (mod %d) ", kv.Key, kv.Value, kv.ModRevision)
		}
		return b.String(), nil
	})
}

// cliAuthenticate calls Authenticate itself; the token is not compared.
func cliAuthenticate(name, password string) authStep {
	return cliStep("", fmt.Sprintf("Authenticate(%q, %q)", name, password), func(ctx context.Context, cli *clientv3.Client) (string, error) {
		r, err := cli.Authenticate(ctx, name, password)
		if err != nil {
			return "", err
		}
		return fmt.Sprintf("token issued: %v", r.Token != ""), nil
	})
}

// cliBogusToken reads key with a made-up token.
func cliBogusToken(k string) authStep {
	return cliStep("", "get "+k+" with token \"bogus\"", func(ctx context.Context, cli *clientv3.Client) (string, error) {
		_, err := cli.Get(metadata.AppendToOutgoingContext(ctx, "token", "bogus"), k)
		return "", err
	})
}

// cliWatch starts a watch of the prefix through user's client, kept until
// the test ends; cliEvents shows what it received since.
func cliWatch(user, prefix string) authStep {
	return authStep{user: user, desc: "start watch --prefix " + prefix, watch: prefix}
}

// cliEvents shows the events user's watch received: all that arrive until
// none has come for a second (two before the first).
func cliEvents(user string) authStep {
	return authStep{user: user, desc: "events of the watch", events: true}
}

// authSide is one server of a scenario and what the script learnt about it.
type authSide struct {
	name    string
	s       *Server
	ids     leaseIDs
	clients map[string]*clientv3.Client
	watches map[string]clientv3.WatchChan // by user
}

// client returns user's ("name:password", or "" for none) clientv3 client,
// created on first use (which authenticates) and kept until the test ends.
func (sd *authSide) client(t *testing.T, user string) (*clientv3.Client, error) {
	if cli := sd.clients[user]; cli != nil {
		return cli, nil
	}
	cfg := clientv3.Config{Endpoints: []string{sd.s.Endpoint()}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()}
	if name, pw, ok := strings.Cut(user, ":"); ok {
		cfg.Username, cfg.Password = name, pw
	}
	cli, err := clientv3.New(cfg)
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { _ = cli.Close() })
	if sd.clients == nil {
		sd.clients = map[string]*clientv3.Client{}
	}
	sd.clients[user] = cli
	return cli, nil
}

func (sd *authSide) runClient(t *testing.T, st authStep) authResult {
	cli, err := sd.client(t, st.user)
	if err != nil {
		return authResult{errs: "client: " + err.Error(), exit: "no client"}
	}
	switch {
	case st.watch != "":
		ctx, cancel := context.WithCancel(context.Background())
		t.Cleanup(cancel)
		if sd.watches == nil {
			sd.watches = map[string]clientv3.WatchChan{}
		}
		sd.watches[st.user] = cli.Watch(ctx, st.watch, clientv3.WithPrefix())
		return authResult{exit: "ok"}
	case st.events:
		return sd.events(st.user)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := st.fn(ctx, cli)
	if err != nil {
		return authResult{stdout: out, errs: err.Error(), exit: "error"}
	}
	return authResult{stdout: out, exit: "ok"}
}

// authResult is the comparable outcome of one step on one server.
type authResult struct {
	stdout, errs, exit string
}

func (r authResult) String() string {
	return fmt.Sprintf("stdout %q\n           stderr %q\n           exit   %s", r.stdout, r.errs, r.exit)
}

// run runs st on this side: etcdctl with the step's credentials, lease ids
// substituted; it returns the normalised outcome.
func (sd *authSide) run(t *testing.T, st authStep) authResult {
	t.Helper()
	if st.fn != nil || st.watch != "" || st.events {
		return sd.runClient(t, st)
	}
	timeout := 30 * time.Second
	if st.wait > 0 {
		timeout = st.wait
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	args := []string{"--endpoints=" + sd.s.Endpoint()}
	if st.user != "" {
		args = append(args, "--user="+st.user)
	}
	args = append(args, sd.ids.args(st.args)...)
	cmd := exec.CommandContext(ctx, RefBin(t, "etcdctl"), args...)
	cmd.Stdin = strings.NewReader(st.stdin)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	exit := exitStatus(err)
	if ctx.Err() != nil {
		exit = "still running after " + timeout.String()
		if st.wait == 0 {
			exit = "TIMEOUT: " + exit
		}
	}
	if !st.noLearn {
		sd.ids.learn(o.String())
	}
	r := authResult{
		stdout: sd.normOut(o.String()),
		errs:   sd.normOut(authErrLines(e.String())),
		exit:   exit,
	}
	if st.anyOut && r.stdout != "" {
		r.stdout = "(some output)"
	}
	return r
}

func (sd *authSide) events(user string) authResult {
	wc := sd.watches[user]
	if wc == nil {
		return authResult{exit: "no watch"}
	}
	var b strings.Builder
	r := authResult{exit: "watching"}
	timeout := time.NewTimer(2 * time.Second)
	defer timeout.Stop()
	for {
		select {
		case resp, ok := <-wc:
			if !ok {
				r.exit = "watch channel closed"
				r.stdout = b.String()
				return r
			}
			if err := resp.Err(); err != nil {
				fmt.Fprintf(&b, "[error: %v] ", err)
			}
			for _, ev := range resp.Events {
				fmt.Fprintf(&b, "%s %s=%s (mod %d) ", ev.Type, ev.Kv.Key, ev.Kv.Value, ev.Kv.ModRevision)
			}
			timeout.Reset(time.Second)
		case <-timeout.C:
			r.stdout = b.String()
			return r
		}
	}
}

var tookRE = regexp.MustCompile(`took (= )?[0-9.]+[µnm]?s`)

// normOut blanks what legitimately differs between the two servers:
// header ids, lease ids (L1, L2, ...), remaining TTLs, this server's
// endpoint and durations.
func (sd *authSide) normOut(s string) string {
	s = normTTL(sd.ids.norm(normIDs(s)))
	s = strings.ReplaceAll(s, sd.s.Endpoint(), "ENDPOINT")
	return tookRE.ReplaceAllString(s, "took T")
}

// authErrLines keeps what etcdctl reports on stderr: the gRPC errors the
// client library logs (method, code and message), a watch's "watch was
// canceled (...)", "Failed to ..." and "... is unhealthy: ..." lines and
// "Error: ..." lines (errText).
func authErrLines(stderr string) string {
	var keep []string
	for _, line := range strings.Split(stderr, "\n") {
		var log struct {
			Method string `json:"method"`
			Error  string `json:"error"`
		}
		switch {
		case strings.HasPrefix(line, "{"):
			if json.Unmarshal([]byte(line), &log) == nil && log.Error != "" {
				l := "log: " + log.Method + ": " + log.Error
				if len(keep) == 0 || keep[len(keep)-1] != l {
					keep = append(keep, l)
				}
			}
		case strings.Contains(line, "watch was canceled"), strings.HasPrefix(line, "Failed to "),
			strings.Contains(line, " is unhealthy: "):
			keep = append(keep, line)
		}
	}
	if et := errText(stderr); et != "" {
		keep = append(keep, et)
	}
	return strings.Join(keep, "\n")
}

// authServers starts the two servers an auth scenario compares: MetaStore
// and etcd, or, with E2E_AUTH_ETCD_ONLY=1 (to check a script), two etcds.
func authServers(t *testing.T) (a, b *authSide) {
	if os.Getenv("E2E_AUTH_ETCD_ONLY") != "" {
		return &authSide{name: "etcd#2", s: StartEtcd(t)}, &authSide{name: "etcd", s: StartEtcd(t)}
	}
	return &authSide{name: "metastore", s: StartMetaStore(t)}, &authSide{name: "etcd", s: StartEtcd(t)}
}

// runAuthScript runs the steps on both sides (each step on both at once)
// and reports every step whose stdout, error lines or exit status differ.
// It returns the number of differing steps.
func runAuthScript(t *testing.T, ms, ref *authSide, phase string, steps []authStep) int {
	t.Helper()
	diffs := 0
	for i, st := range steps {
		var mr, rr authResult
		var wg sync.WaitGroup
		wg.Add(2)
		go func() { defer wg.Done(); mr = ms.run(t, st) }()
		go func() { defer wg.Done(); rr = ref.run(t, st) }()
		wg.Wait()
		if testing.Verbose() {
			t.Logf("%s %d: %s\n  etcd: %s", phase, i, st, rr)
		}
		if strings.HasPrefix(rr.exit, "TIMEOUT") {
			t.Errorf("%s step %d %s: etcd timed out; the script is wrong", phase, i, st)
		}
		if mr != rr {
			diffs++
			t.Errorf("%s step %d %s differs\n  %-9s: %s\n  %-9s: %s", phase, i, st, ref.name, rr, ms.name, mr)
		}
	}
	return diffs
}

// Transactions for etcdctl txn --interactive=false: compares, a blank line,
// success ops, a blank line, failure ops, a blank line.
const (
	txnAllowed = "value(\"foo/a\") = \"1\"\n\nput foo/t1 yes\nget bar\nget foo/ --prefix\n\nput foo/t2 no\n\n"
	// The failure branch writes bar (read-only for alice); it would not run.
	txnDeniedBranch = "value(\"foo/a\") = \"1\"\n\nput foo/t3 yes\n\nput bar no\n\n"
	// The success branch deletes m1, which alice may not touch.
	txnDeniedSuccess = "value(\"foo/a\") = \"nope\"\n\nput foo/t4 yes\n\ndel m1\n\n"
	// The compare reads zz, which alice may not read.
	txnDeniedCompare = "value(\"zz\") = \"y\"\n\nput foo/t5 yes\n\n\n"
	// A read of a key alice may read, but through a range she may not.
	txnDeniedRange = "\n\nget foo/a\nget f --prefix\n\n\n"
	// bob: a read-only txn inside his range; then one that writes.
	txnBobRead  = "version(\"m1\") > \"0\"\n\nget m --from-key\n\nget m1\n\n"
	txnBobWrite = "\n\nput m9 x\n\n\n"
)

// authSetupSteps creates the users and roles and enables auth. Before
// auth enable the steps run without credentials.
func authSetupSteps() []authStep {
	return []authStep{
		noCreds("auth", "status"),
		noCreds("user", "add", "alice:"+alicePW),
		noCreds("user", "add", "bob:"+bobPW),
		noCreds("user", "add", "carol", "--no-password"),
		noCreds("role", "add", "rw-foo"),
		noCreds("role", "grant-permission", "rw-foo", "readwrite", "--prefix", "foo/"),
		noCreds("role", "grant-permission", "rw-foo", "read", "bar"),
		noCreds("role", "add", "ro"),
		noCreds("role", "grant-permission", "ro", "read", "--from-key", "m"),
		noCreds("role", "add", "empty"),
		// Adjacent ranges: together they cover [a, c); [c, d) is a gap.
		noCreds("role", "add", "split"),
		noCreds("role", "grant-permission", "split", "read", "a", "b"),
		noCreds("role", "grant-permission", "split", "read", "b", "c"),
		noCreds("role", "grant-permission", "split", "read", "d", "e"),
		noCreds("user", "grant-role", "alice", "rw-foo"),
		noCreds("user", "grant-role", "bob", "ro"),
		noCreds("user", "grant-role", "bob", "split"),
		noCreds("user", "grant-role", "carol", "rw-foo"),
		// Data written before auth is on.
		noCreds("put", "foo/a", "1"),
		noCreds("put", "bar", "b0"),
		noCreds("put", "m1", "x"),
		noCreds("put", "zz", "y"),
		noCreds("put", "l0", "below-m"),
		noCreds("put", "b1", "in-split"),
		// No root user yet: refused. Then a root user without the root
		// role: the server refuses with "root user does not have root
		// role", on which etcdctl itself adds the role "root", grants it
		// to root and enables again (the client logs that first refusal).
		noCreds("auth", "enable"),
		noCreds("user", "add", "root:"+rootPW),
		noCreds("auth", "enable"),
		noCreds("auth", "status"),
		noCreds("user", "grant-role", "root", "root"),
		asUser("root:"+rootPW)("auth", "status", "-w", "json"),
		asUser("root:"+rootPW)("auth", "enable"),
	}
}

// TestAuthEnforcementScenario enables auth and runs one scripted etcdctl
// session, with several users, against MetaStore and against the reference
// etcd; every step must print the same stdout and errors and exit the same.
func TestAuthEnforcementScenario(t *testing.T) {
	ms, ref := authServers(t)
	root := asUser("root:" + rootPW)
	alice := asUser("alice:" + alicePW)
	bob := asUser("bob:" + bobPW)
	const rootU, aliceU, bobU = "root:" + rootPW, "alice:" + alicePW, "bob:" + bobPW
	short := 2 * time.Second // a watch that is permitted keeps watching

	phases := []struct {
		name  string
		steps []authStep
	}{
		{"1-setup", authSetupSteps()},
		{"2-authenticate", []authStep{
			noCreds("get", "foo/a"),
			noCreds("put", "foo/a", "x"),
			noCreds("del", "foo/a"),
			noCreds("user", "list"),
			{args: []string{"endpoint", "status", "-w", "json"}, anyOut: true},
			noCreds("member", "list"),
			noCreds("alarm", "list"),
			cliAuthenticate("carol", ""), // carol has no password: she cannot log in at all
			cliAuthenticate("carol", "x"),
			cliAuthenticate("alice", "wrong"),
			cliAuthenticate("alice", alicePW),
			cliAuthenticate("", ""),
			cliBogusToken("foo/a"),
			asUser("alice:wrong")("get", "foo/a"),
			asUser("nobody:pw")("get", "foo/a"),
			asUser("carol:")("get", "foo/a"), // carol has no password: no login at all
			asUser("alice:")("get", "foo/a"),
			root("get", "", "--prefix"),
			root("user", "list"),
			root("role", "list"),
			root("user", "get", "alice"),
		}},
		{"3-alice", []authStep{
			alice("put", "foo/b", "2"),
			alice("get", "foo/b", "-w", "json"),
			alice("put", "foo/a", "1", "--prev-kv"),
			alice("put", "bar", "nope"),
			alice("get", "bar"),
			alice("get", "bar", "-w", "json"),
			alice("get", "foo/", "--prefix"),
			alice("get", "foo/", "--prefix", "--keys-only"),
			alice("get", "f", "--prefix"),
			alice("get", "", "--from-key"),
			alice("get", "", "--prefix"),
			alice("get", "foo/", "foo0"), // exactly the prefix range
			alice("get", "foo/", "foo1"), // wider than the prefix
			alice("get", "bar", "bas"),   // wider than the single key
			alice("get", "zz"),
			alice("del", "foo/b"),
			alice("del", "foo/b", "--prev-kv"),
			alice("del", "bar"),
			alice("del", "foo/", "--prefix", "--prev-kv", "-w", "json"),
			alice("put", "foo/a", "1"),
			txnAs(aliceU, txnAllowed),
			txnAs(aliceU, txnAllowed, "-w", "json"),
			txnAs(aliceU, txnDeniedBranch),
			txnAs(aliceU, txnDeniedSuccess),
			txnAs(aliceU, txnDeniedCompare),
			txnAs(aliceU, txnDeniedRange),
			alice("get", "foo/", "--prefix", "-w", "json"), // none of the denied txns wrote
			alice("get", "bar", "--rev", "1"),
			// Serializable reads are checked too (etcd's doSerialize).
			alice("get", "bar", "--consistency=s"),
			alice("get", "zz", "--consistency=s"),
			alice("get", "foo/", "--prefix", "--consistency=s", "--keys-only"),
			noCreds("get", "bar", "--consistency=s"),
			// The other way to give credentials.
			noCreds("get", "bar", "--user", "alice", "--password", alicePW),
			noCreds("get", "bar", "--user", "alice", "--password", "wrong"),
			// endpoint health reads the key "health": permission denied
			// still means healthy; no credentials do not.
			alice("endpoint", "health"),
			noCreds("endpoint", "health"),
		}},
		{"4-bob", []authStep{
			bob("get", "m1"),
			bob("get", "m", "--from-key"),
			bob("get", "m", "--from-key", "-w", "json"),
			bob("get", "m", "zzz"),
			bob("get", "n", "--prefix"),
			bob("get", "zz"),
			bob("get", "l", "--from-key"),
			bob("get", "", "--from-key"),
			bob("get", "l0"),
			bob("get", "foo/a"),
			bob("put", "m2", "x"),
			bob("put", "zz", "x"),
			bob("del", "m1"),
			bob("del", "m", "--from-key"),
			bob("get", "a", "b"),
			bob("get", "a", "c"), // covered by [a, b) and [b, c) together
			bob("get", "a", "--prefix"),
			bob("get", "b", "--prefix"),
			bob("get", "a", "d"), // [c, d) is not covered
			bob("get", "a", "e"),
			bob("get", "d", "e"),
			bob("get", "c"),
			bob("get", "d", "--prefix"),
			bob("get", "m", "--from-key", "--keys-only"),
			txnAs(bobU, txnBobRead),
			txnAs(bobU, txnBobWrite),
			bob("user", "get", "bob"),
			bob("role", "get", "ro"),
		}},
		{"5-watch", []authStep{
			watchAs(bobU, short, "foo/a", "--rev=1"), // denied: bob may not read foo/a
			watchAs(aliceU, short, "zz", "--rev=1"),
			watchAs(aliceU, short, "foo", "--prefix", "--rev=1"),
			watchAs("", short, "foo/a", "--rev=1"), // no credentials
			watchAs("alice:wrong", short, "foo/a", "--rev=1"),
			watchAs(aliceU, short, "foo/a", "--rev=1"), // permitted: history, then keeps watching
			watchAs(aliceU, short, "foo/", "--prefix", "--rev=1"),
			watchAs(bobU, short, "m1", "--rev=1"),
			watchAs(bobU, short, "m", "--prefix", "--rev=1"),
		}},
		{"6-lease", []authStep{
			alice("lease", "grant", "600"), // L1
			alice("put", "foo/l", "v", "--lease={L1}"),
			alice("lease", "timetolive", "{L1}", "--keys"),
			alice("lease", "list"),
			bob("lease", "timetolive", "{L1}"),
			bob("lease", "timetolive", "{L1}", "--keys"),
			bob("lease", "keep-alive", "--once", "{L1}"),
			bob("lease", "list"), // a lease with keys bob may not read exists
			bob("lease", "revoke", "{L1}"),
			noCreds("lease", "revoke", "{L1}"),
			bob("lease", "grant", "600"), // L2: granting needs no permission
			bob("put", "m3", "v", "--lease={L2}"),
			alice("put", "foo/l2", "v", "--lease={L2}"), // alice attaches a key to bob's lease
			bob("lease", "revoke", "{L2}"),              // now bob cannot revoke his own lease
			root("lease", "grant", "600"),               // L3
			root("put", "zz2", "v", "--lease={L3}"),
			alice("put", "foo/y", "v", "--lease={L3}"), // L3 holds a key alice may not write
			alice("lease", "revoke", "{L3}"),
			alice("lease", "timetolive", "{L3}", "--keys"),
			{args: []string{"lease", "grant", "600"}, noLearn: true},
			noCreds("lease", "timetolive", "{L3}"),
			noCreds("lease", "list"),
			bob("put", "foo/x", "v", "--lease={L1}"),
			alice("lease", "keep-alive", "--once", "{L1}"),
			alice("lease", "revoke", "{L1}"),
			alice("get", "foo/l"),
			alice("lease", "timetolive", "{L1}"),
			alice("lease", "revoke", "{L2}"),
			noCreds("lease", "revoke", "{L3}"),
			root("lease", "grant", "600"),      // L4
			noCreds("lease", "revoke", "{L4}"), // no keys attached, but no user either
			root("lease", "list"),
			root("lease", "revoke", "{L3}"),
			root("get", "foo/l2"),
			root("get", "zz2"),
		}},
		{"6b-lock", []authStep{
			// etcdctl lock is client-side: a lease, a txn, ranges and a watch.
			// (It leaves its session leases behind, hence after 6-lease.)
			alice("lock", "foo/lk", "echo", "alice-holds-it"),
			bob("lock", "foo/lk", "echo", "bob-holds-it"),
			bob("lock", "m/lk", "echo", "bob-holds-it"),
			alice("lock", "foo/lk", "--ttl=5", "echo", "again"),
		}},
		{"7-admin", []authStep{
			alice("user", "list"),
			alice("role", "list"),
			alice("user", "add", "dave:pw"),
			alice("role", "add", "x"),
			alice("role", "grant-permission", "rw-foo", "readwrite", "zz"),
			alice("user", "grant-role", "alice", "ro"),
			alice("user", "passwd", "alice", "--interactive=false"),
			alice("user", "delete", "bob"),
			alice("compaction", "2"),
			alice("defrag"),
			{user: aliceU, args: []string{"endpoint", "status", "-w", "json"}, anyOut: true},
			{user: aliceU, args: []string{"endpoint", "hashkv", "-w", "json"}, anyOut: true},
			alice("alarm", "list"),
			alice("alarm", "disarm"),
			{user: aliceU, args: []string{"member", "list", "-w", "json"}, anyOut: true},
			alice("auth", "disable"),
			alice("auth", "enable"),
			alice("auth", "status"),
			alice("user", "get", "alice"),
			alice("user", "get", "alice", "--detail"),
			alice("user", "get", "bob"),
			alice("user", "get", "nobody"),
			alice("role", "get", "rw-foo"),
			alice("role", "get", "ro"),
			alice("role", "get", "nope"),
			bob("user", "get", "alice"),
			root("user", "get", "alice", "--detail"),
			root("role", "get", "rw-foo"),
			root("compaction", "3"),
			root("defrag"),
			{user: "root:" + rootPW, args: []string{"endpoint", "hashkv", "-w", "json"}, anyOut: true},
			noCreds("compaction", "4"),
			noCreds("defrag"),
			noCreds("alarm", "list"),
		}},
		{"8-revoke", []authStep{
			// alice's long-lived client (one token) and etcdctl (a new
			// token each time) see permission changes at once.
			cliPut(aliceU, "foo/r", "0"),
			cliWatch(aliceU, "foo/"),
			alice("put", "foo/r", "1"),
			root("role", "revoke-permission", "rw-foo", "foo/", "--prefix"),
			root("put", "foo/r", "by-root"),
			cliEvents(aliceU), // a watch is checked when it is created only
			cliPut(aliceU, "foo/r", "x"),
			cliGet(aliceU, "foo/r"),
			cliGet(aliceU, "bar"),
			alice("put", "foo/r", "2"),
			alice("get", "foo/r"),
			alice("get", "bar"),
			root("role", "grant-permission", "rw-foo", "write", "--prefix", "foo/"),
			cliPut(aliceU, "foo/r", "y"),
			alice("put", "foo/r", "3"),
			alice("get", "foo/r"), // write-only now
			alice("put", "foo/r", "3b", "--prev-kv"),
			alice("del", "foo/r", "--prev-kv"),
			alice("get", "foo/r", "--count-only", "-w", "json"),
			watchAs(aliceU, short, "foo/r", "--rev=1"),
			root("auth", "status"),
			{user: "root:" + rootPW, stdin: alicePW2 + "\n", args: []string{"user", "passwd", "alice", "--interactive=false"}},
			cliGet(aliceU, "bar"), // the old token is gone; the client's password is stale
			cliPut(aliceU, "foo/r", "z"),
			root("put", "foo/r", "by-root-2"),
			cliEvents(aliceU),
			alice("get", "bar"),
			asUser("alice:"+alicePW2)("get", "bar"),
			asUser("alice:"+alicePW2)("put", "foo/r", "4"),
			root("user", "revoke-role", "alice", "rw-foo"),
			asUser("alice:"+alicePW2)("get", "bar"),
			asUser("alice:"+alicePW2)("user", "get", "alice"),
			asUser("alice:"+alicePW2)("role", "get", "rw-foo"),
			root("user", "delete", "bob"),
			bob("get", "m1"),
			root("role", "delete", "ro"),
			root("user", "revoke-role", "root", "root"), // etcd refuses to lock itself out
			root("user", "delete", "root"),
			root("get", "", "--prefix", "--keys-only"),
			root("auth", "status"),
		}},
		{"9-disable", []authStep{
			cliGet(rootU, "zz"),
			alice("auth", "disable"),
			noCreds("auth", "disable"),
			root("auth", "disable"),
			noCreds("auth", "status"),
			noCreds("get", "", "--prefix", "--keys-only"),
			noCreds("put", "zz", "free"),
			noCreds("user", "list"),
			asUser("alice:"+alicePW2)("get", "bar"),
			asUser("alice:wrong")("get", "bar"),
			root("get", "zz"),
			cliGet(rootU, "zz"), // its token is from before auth disable
			noCreds("auth", "disable"),
			noCreds("auth", "enable"),
			noCreds("get", "zz"),
			root("get", "zz"),
			cliGet(rootU, "zz"), // tokens do not survive auth disable; the client logs in again
			root("auth", "disable"),
			noCreds("auth", "status", "-w", "json"),
		}},
	}
	for _, ph := range phases {
		runAuthScript(t, ms, ref, ph.name, ph.steps)
	}
}

// TestAuthEnabledSurvivesRestart: auth enabled, users, roles and their
// permissions are persisted; after a kill -9 and a restart credentials are
// still required and still grant what they did.
func TestAuthEnabledSurvivesRestart(t *testing.T) {
	ms, ref := authServers(t)
	root := asUser("root:" + rootPW)
	alice := asUser("alice:" + alicePW)
	const rootU, aliceU = "root:" + rootPW, "alice:" + alicePW
	runAuthScript(t, ms, ref, "setup", authSetupSteps())
	runAuthScript(t, ms, ref, "before-restart", []authStep{
		cliGet(rootU, "zz"),
		cliGet(aliceU, "foo/a"),
		cliGet(aliceU, "zz"),
	})
	for _, sd := range []*authSide{ms, ref} {
		sd.s.Kill()
		sd.s.Restart(t)
	}
	runAuthScript(t, ms, ref, "after-restart", []authStep{
		noCreds("get", "foo/a"),
		noCreds("put", "foo/a", "x"),
		asUser("alice:wrong")("get", "foo/a"),
		// Clients from before the restart: their tokens are gone, they
		// log in again.
		cliGet(rootU, "zz"),
		cliGet(aliceU, "foo/a"),
		cliGet(aliceU, "zz"),
		root("auth", "status"),
		root("get", "", "--prefix", "--keys-only"),
		alice("put", "foo/b", "2"),
		alice("get", "foo/", "--prefix"),
		alice("get", "bar"),
		alice("put", "bar", "x"),
		alice("get", "zz"),
		alice("user", "list"),
		root("user", "list"),
		root("auth", "disable"),
		noCreds("get", "zz"),
	})
	// And disabled stays disabled.
	for _, sd := range []*authSide{ms, ref} {
		sd.s.Kill()
		sd.s.Restart(t)
	}
	runAuthScript(t, ms, ref, "after-2nd-restart", []authStep{
		noCreds("auth", "status"),
		noCreds("get", "zz"),
	})
}
