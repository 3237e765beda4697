package e2e

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// The web console (console/) in a real browser: headless Chromium driven
// over the DevTools protocol. Each test starts its own MetaStore; a test
// is skipped, saying why, only when no Chromium binary is installed.
//
// go test ./e2e -run TestConsole -update-screenshots rewrites the
// screenshots under docs/console/ that the README shows.

var updateScreenshots = flag.Bool("update-screenshots", false, "write the web console's screenshots to docs/console/")

// chromium is the browser binary: $CHROME_BIN, or the first of the usual
// names on PATH.
func chromium(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("CHROME_BIN"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "headless-shell"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Skip("no Chromium binary found (apt-get install chromium, or set CHROME_BIN): skipping the web console's browser tests")
	return ""
}

// browserPage is one headless browser tab. It fails the test on a script
// exception or a Content-Security-Policy violation on the page, and
// counts alert() dialogs (an XSS payload's signature); confirm() and
// prompt() dialogs are accepted, as a user confirming would.
type browserPage struct {
	t      *testing.T
	ctx    context.Context // the tab's: no deadline (it would end the browser)
	base   string
	alerts atomic.Int32

	mu       sync.Mutex
	problems []string
}

// actionTimeout bounds each browser step (a wait included).
const actionTimeout = 30 * time.Second

func newBrowserPage(t *testing.T, base string) *browserPage {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(chromium(t)), chromedp.NoSandbox,
		chromedp.WindowSize(1280, 900))
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelTab := chromedp.NewContext(allocCtx)
	t.Cleanup(func() { cancelTab(); cancelAlloc() })
	p := &browserPage{t: t, ctx: ctx, base: base}
	dialogs := make(chan struct{}, 16)
	err := chromedp.Listen(ctx, func(ev any) {
		switch e := ev.(type) {
		case *page.EventJavascriptDialogOpening:
			if e.Type == page.DialogTypeAlert {
				p.alerts.Add(1)
			}
			dialogs <- struct{}{}
		case *runtime.EventExceptionThrown:
			d := e.ExceptionDetails
			desc := ""
			if d.Exception != nil {
				desc = d.Exception.Description
			}
			p.problem(fmt.Sprintf("script exception at %s:%d: %s %s", d.URL, d.LineNumber+1, d.Text, desc))
		case *log.EventEntryAdded:
			if strings.Contains(e.Entry.Text, "Content Security Policy") {
				p.problem("CSP violation: " + e.Entry.Text)
			}
		}
	})
	if err != nil {
		t.Fatalf("starting Chromium: %v", err)
	}
	go func() {
		for {
			select {
			case <-dialogs:
				_, _ = chromedp.Call(ctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: true})
			case <-ctx.Done():
				return
			}
		}
	}()
	for _, enable := range []cdp.Command[cdp.Empty, cdp.Empty]{log.Enable, runtime.Enable} {
		if _, err := chromedp.Call(ctx, enable, cdp.Empty{}); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		p.mu.Lock()
		defer p.mu.Unlock()
		for _, pr := range p.problems {
			t.Errorf("browser: %s", pr)
		}
	})
	return p
}

func (p *browserPage) problem(s string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.problems = append(p.problems, s)
}

// run runs browser steps, failing the test with the page's text if one
// fails.
func (p *browserPage) run(steps ...chromedp.Action[chromedp.Void]) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, actionTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		p.fail(err)
	}
}

func (p *browserPage) fail(err error) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 5*time.Second)
	defer cancel()
	body, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector('main') ? document.querySelector('main').innerText : ''`))
	p.t.Fatalf("browser: %v\npage text: %s", err, body)
}

// eval evaluates a JavaScript expression.
func eval[T any](p *browserPage, expr string) T {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, actionTimeout)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		p.fail(err)
	}
	return v
}

// open loads the console at a hash route (a page load the first time, a
// hash change after).
func (p *browserPage) open(hash string) {
	p.t.Helper()
	if strings.HasPrefix(eval[string](p, `location.href`), p.base+"/ui/") {
		eval[string](p, fmt.Sprintf(`location.hash = %q`, hash))
		return
	}
	p.run(chromedp.Navigate(p.base + "/ui/" + hash))
}

// waitFor waits until the JavaScript expression is true.
func (p *browserPage) waitFor(expr string) {
	p.t.Helper()
	p.run(chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := chromedp.Poll[bool](expr, chromedp.WithPollingTimeout(actionTimeout))(ctx, t)
		return err
	}))
}

// waitText waits until an element matching sel holds substr.
func (p *browserPage) waitText(sel, substr string) {
	p.t.Helper()
	p.waitFor(fmt.Sprintf(`[...document.querySelectorAll(%q)].some(e => e.textContent.includes(%q))`, sel, substr))
}

func (p *browserPage) count(sel string) int {
	p.t.Helper()
	return eval[int](p, fmt.Sprintf(`document.querySelectorAll(%q).length`, sel))
}

func (p *browserPage) text(sel string) string {
	p.t.Helper()
	return eval[string](p, fmt.Sprintf(`document.querySelector(%q).textContent`, sel))
}

func (p *browserPage) click(sel string) { p.t.Helper(); p.run(chromedp.Click(chromedp.CSS(sel))) }

func (p *browserPage) setValue(sel, v string) {
	p.t.Helper()
	p.run(chromedp.SetValue(chromedp.CSS(sel), v))
}

// shot saves a screenshot of the page as docs/console/<name>.png when
// -update-screenshots is given.
func (p *browserPage) shot(name string) {
	p.t.Helper()
	if !*updateScreenshots {
		return
	}
	ctx, cancel := context.WithTimeout(p.ctx, actionTimeout)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		p.fail(err)
	}
	path := filepath.Join(RepoRoot(), "docs", "console", name+".png")
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		p.t.Fatal(err)
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		p.t.Fatal(err)
	}
}

// loadKeys writes n keys prefix%07d in Txns of batch puts, several at
// once.
func loadKeys(t *testing.T, cli *clientv3.Client, prefix string, n, batch int) {
	t.Helper()
	var wg sync.WaitGroup
	var failed atomic.Pointer[error]
	slots := make(chan struct{}, 4)
	for start := 0; start < n; start += batch {
		slots <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-slots; wg.Done() }()
			ops := make([]clientv3.Op, 0, batch)
			for i := start; i < min(start+batch, n); i++ {
				ops = append(ops, clientv3.OpPut(fmt.Sprintf("%s%07d", prefix, i), fmt.Sprintf(`{"n":%d}`, i)))
			}
			if _, err := cli.Txn(context.Background()).Then(ops...).Commit(); err != nil {
				failed.Store(&err)
			}
		}()
	}
	wg.Wait()
	if err := failed.Load(); err != nil {
		t.Fatal(*err)
	}
}

func mustCtl(t *testing.T, ep string, args ...string) string {
	t.Helper()
	out, errOut, err := Etcdctl(t, ep, args...)
	if err != nil {
		t.Fatalf("etcdctl %v: %v\n%s%s", args, err, out, errOut)
	}
	return out
}

// TestConsoleBrowser: with auth on, a user logs in, browses a 100k-key
// prefix a page at a time, opens a key's history and its diff, edits it
// while etcdctl changes it (the conflict is shown, nothing is
// overwritten), sees a put made by etcdctl in the watch feed, and cannot
// see a prefix outside their permissions. A key named like a script is
// shown as text.
func TestConsoleBrowser(t *testing.T) {
	ms := StartMetaStore(t, WithFlags("--max-txn-ops=1000", "--bcrypt-cost=4"))
	ep := ms.Endpoint()
	cli := ms.Client(t)
	loadKeys(t, cli, "big/item-", 100_000, 1000)
	const xssKey, xssValue = `app/<img src=x onerror=alert("key")>`, `<script>alert("value")</script>`
	for _, kv := range [][2]string{{"app/config.json", `{"replicas":1,"image":"nginx:1.25"}`}, {xssKey, xssValue}, {"secret/db-password", "hunter2"}} {
		mustCtl(t, ep, "put", kv[0], kv[1])
	}
	for _, args := range [][]string{
		{"user", "add", "root:root"}, {"user", "grant-role", "root", "root"},
		{"user", "add", "alice:alice"}, {"role", "add", "dev"},
		{"role", "grant-permission", "dev", "readwrite", "--prefix", "app/"},
		{"role", "grant-permission", "dev", "read", "--prefix", "big/"},
		{"user", "grant-role", "alice", "dev"}, {"auth", "enable"},
	} {
		mustCtl(t, ep, args...)
	}
	alice := []string{"--user=alice:alice"}
	mustCtl(t, ep, append(alice, "put", "app/config.json", `{"replicas":3,"image":"nginx:1.25"}`)...)
	mustCtl(t, ep, append(alice, "put", "app/config.json", `{"replicas":3,"image":"nginx:1.27"}`)...)

	p := newBrowserPage(t, ms.ClientURL())
	// Nothing without a login.
	p.open("#/keys/big/")
	p.waitFor(`location.hash === '#/login' && !!document.querySelector('#login-form')`)
	p.setValue("#login-user", "alice")
	p.setValue("#login-password", "wrong")
	p.click("#login-submit")
	p.waitText("#login-form .error", "authentication failed")
	p.setValue("#login-password", "alice")
	p.click("#login-submit")

	// The login returns to the page asked for: 100k keys, 100 a page.
	p.waitText("#keys-info", "100,000 keys under this prefix")
	p.waitFor(`document.querySelectorAll('#key-rows tr.entry').length === 100`)
	p.click("#keys-more")
	p.waitFor(`document.querySelectorAll('#key-rows tr.entry').length === 200`)
	if got := p.text("#key-rows tr.entry:last-child a"); got != "item-0000199" {
		t.Fatalf("row 200 is %q", got)
	}

	// A prefix alice may not read: etcd's refusal, and nothing of it.
	p.open("#/keys/secret/")
	p.waitText("#main .error", "etcdserver: permission denied")
	if n := p.count("#key-rows tr.entry"); n != 0 {
		t.Fatalf("%d rows of a forbidden prefix shown", n)
	}
	p.open("#/key/secret/db-password")
	p.waitText("#main .error", "permission denied")
	if strings.Contains(p.text("main"), "hunter2") {
		t.Fatal("a forbidden value is on the page")
	}

	// Markup in a key and a value is shown as text.
	p.open("#/keys/app/")
	p.waitText("#key-rows a", `<img src=x onerror=alert("key")>`)
	p.click(`#key-rows a[data-key^="app/<img"]`)
	p.waitText("#value-view", xssValue)
	if n := p.count("#main script, #main img"); n != 0 || p.alerts.Load() != 0 {
		t.Fatalf("the key or value became markup: %d elements, %d alerts", n, p.alerts.Load())
	}

	// A key's versions and the diff of the last two.
	p.open("#/key/app/config.json")
	p.waitFor(`document.querySelectorAll('#history tr.version').length === 3`)
	p.waitText("#diff .del", `"image": "nginx:1.25"`)
	p.waitText("#diff .add", `"image": "nginx:1.27"`)
	p.shot("key-history")
	// Edit what is shown while someone else writes the key.
	p.setValue("#value-editor", `{"replicas":5}`)
	mustCtl(t, ep, append(alice, "put", "app/config.json", `{"replicas":4}`)...)
	p.click("#save")
	p.waitText("#conflict", "someone changed this key")
	if got := mustCtl(t, ep, append(alice, "get", "app/config.json", "--print-value-only")...); strings.TrimSpace(got) != `{"replicas":4}` {
		t.Fatalf("after the conflict the key holds %q", got)
	}
	// Reloading shows their version; saving over it is then a plain edit.
	p.click("#conflict-reload")
	p.waitText("#value-view", `"replicas": 4`)
	p.setValue("#value-editor", `{"replicas":5}`)
	p.click("#save")
	p.waitText("#meta-version", "5")

	// The watch feed shows etcdctl's put.
	p.open("#/watch/app/")
	p.waitText("#watch-status", "Watching")
	mustCtl(t, ep, append(alice, "put", "app/from-etcdctl", "hello from etcdctl")...)
	p.waitText("#events a.event-key", "app/from-etcdctl")
	p.waitText("#events", "hello from etcdctl")
	// Resumed after a pause, it replays what happened meanwhile.
	p.click("#watch-pause")
	p.waitText("#watch-status", "Paused")
	mustCtl(t, ep, append(alice, "put", "app/while-paused", "x")...)
	p.click("#watch-pause")
	p.waitText("#events a.event-key", "app/while-paused")
	p.shot("watch")

	// Her own user and role, nothing of the others'.
	p.open("#/auth")
	p.waitText("#auth-enabled", "enabled")
	p.waitText("main", "You see your own user and roles")
	if users, roles := p.text("#auth-users"), p.text("#auth-roles"); strings.TrimSpace(users) != "alicedev" || !strings.Contains(roles, "READWRITE app/* (prefix)") {
		t.Fatalf("alice's auth page: users %q, roles %q", users, roles)
	}
	if p.alerts.Load() != 0 {
		t.Fatalf("%d alert dialogs", p.alerts.Load())
	}
}

// TestConsoleCluster: on a three-member cluster, the members page shows
// every member's status, and "Make leader" moves leadership to the member
// chosen. Also the source of the members, leases, keys and performance
// screenshots.
func TestConsoleCluster(t *testing.T) {
	servers := StartCluster(t, KindMetaStore, 3)
	lead := waitLeader(t, servers, 20*time.Second)
	target := servers[(lead+1)%3]
	ep := servers[0].Endpoint()
	for _, kv := range [][2]string{
		{"/registry/deployments/default/web", `{"kind":"Deployment","spec":{"replicas":3}}`},
		{"/registry/pods/default/web-6d4cf56db6-2xk8p", `{"kind":"Pod","status":{"phase":"Running"}}`},
		{"/registry/pods/default/web-6d4cf56db6-9qv7c", `{"kind":"Pod","status":{"phase":"Running"}}`},
		{"/registry/services/specs/default/web", `{"kind":"Service"}`},
		{"/registry/configmaps/kube-system/coredns", `{"kind":"ConfigMap"}`},
	} {
		mustCtl(t, ep, "put", kv[0], kv[1])
	}
	lease := strings.Fields(mustCtl(t, ep, "lease", "grant", "600"))[1]
	mustCtl(t, ep, "put", "/registry/leases/kube-node-lease/node-1", "renewed", "--lease="+lease)
	mustCtl(t, ep, "put", "/registry/leases/kube-node-lease/node-2", "renewed", "--lease="+lease)

	p := newBrowserPage(t, servers[0].ClientURL())
	p.open("#/leases")
	p.waitText("#lease-rows", "/registry/leases/kube-node-lease/node-1")
	p.shot("leases")
	p.open("#/keys/")
	p.waitText("#key-rows", "/")
	p.open("#/keys//registry/")
	p.waitText("#key-rows", "pods/")
	p.shot("keys")
	p.open("#/performance")
	p.waitFor(`document.querySelectorAll('#sparklines svg polyline').length >= 1`)
	if *updateScreenshots {
		// Traffic for the sparklines to draw: a dozen samples of it.
		cli := servers[0].Client(t)
		ctx, stop := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			defer close(done)
			for i := 0; ctx.Err() == nil; i++ {
				cli.Put(ctx, fmt.Sprintf("/registry/events/default/e%d", i%500), strings.Repeat("x", 200))
			}
		}()
		p.waitFor(`+(document.querySelector('[data-series=dbSize]').textContent.match(/over (\d+) samples/) || [0, 0])[1] >= 12`)
		stop()
		<-done
	}
	p.shot("performance")

	p.open("#/members")
	p.waitFor(`document.querySelectorAll('#member-rows tr.member .badge.ok').length >= 3`)
	p.waitText("#leader-name", servers[lead].Name)
	p.click(fmt.Sprintf(`#member-rows tr.member[data-member=%q] button.move-leader`, target.Name))
	p.waitText("#member-done", "done")
	p.waitText("#leader-name", target.Name)
	if got := waitLeader(t, servers, 10*time.Second); servers[got] != target {
		t.Fatalf("leader is %s, want %s", servers[got].Name, target.Name)
	}
	p.waitText("#leader-log", target.Name+" leads")
	p.shot("members")
}
