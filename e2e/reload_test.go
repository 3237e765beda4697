package e2e

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestReloadOnSIGHUP: a member started from a config file re-reads it on
// SIGHUP. A new log level takes effect at once (info lines stop); a
// member setting that can (the quota) takes effect; a setting that cannot
// change while running (the name) is logged and kept
// (member list unchanged); a file that does not parse changes nothing and
// the member serves on.
func TestReloadOnSIGHUP(t *testing.T) {
	cport, pport := FreePort(t), FreePort(t)
	client := "http://127.0.0.1:" + strconv.Itoa(cport)
	peer := "http://127.0.0.1:" + strconv.Itoa(pport)
	endpoint := "127.0.0.1:" + strconv.Itoa(cport)
	dir := t.TempDir()
	file := filepath.Join(dir, "metastore.yaml")
	write := func(name, level, quota string) {
		body := "name: " + name + "\ndata-dir: " + filepath.Join(dir, "data") + "\nquota-backend-bytes: " + quota + "\n" +
			"listen-client-urls: " + client + "\nadvertise-client-urls: " + client + "\n" +
			"listen-peer-urls: " + peer + "\ninitial-advertise-peer-urls: " + peer + "\n" +
			"initial-cluster: r1=" + peer + "\nlog-level: " + level + "\n"
		if err := os.WriteFile(file, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("r1", "info", "0")
	l := launch(t, MetaStoreBin(t), dir, []string{"--config-file", file}, nil)
	l.waitServing(t, endpoint)
	before := memberView(t, endpoint)

	// waitFor waits until the log has n lines containing s (the member
	// handles SIGHUP on its own goroutine).
	waitFor := func(s string, n int) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for strings.Count(l.output(), s) < n {
			if time.Now().After(deadline) {
				t.Fatalf("no %d× %q in the log:\n%s", n, s, l.output())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	hup := func() {
		if err := l.cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
	}

	write("renamed", "warn", "123456789")
	hup()
	waitFor(`"msg":"setting cannot change while the member runs; keeping the running value until restart","setting":"name","running":"\"r1\"","requested":"\"renamed\""`, 1)
	waitFor(`"msg":"changed setting","setting":"log-level","old":"\"info\"","new":"\"warn\""`, 1)
	// The level is warn now: the next reload's info line is not written,
	// its warning about the name is.
	hup()
	waitFor(`"setting":"name"`, 2)
	if n := strings.Count(l.output(), `"msg":"reloading the configuration"`); n != 1 {
		t.Errorf("%d info lines \"reloading the configuration\" after the level became warn, want 1 (the first)", n)
	}
	if after := memberView(t, endpoint); after != before {
		t.Errorf("member changed by a reload: %s, was %s", after, before)
	}
	// The member's own settings change too: the quota it reports.
	waitFor(`"msg":"changed setting","setting":"quota-backend-bytes"`, 1)
	if st, _, err := Etcdctl(t, endpoint, "endpoint", "status", "-w", "json"); err != nil || !strings.Contains(st, `"dbSizeQuota":123456789`) {
		t.Errorf("quota after the reload: %v %s", err, st)
	}

	if err := os.WriteFile(file, []byte("name: [broken\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	hup()
	waitFor(`"msg":"configuration reload refused; the member keeps running with its configuration"`, 1)
	if out, errOut, err := Etcdctl(t, endpoint, "put", "after", "reload"); err != nil || out != "OK\n" {
		t.Fatalf("put after a refused reload: %q %v %s", out, err, errOut)
	}
}
