package main

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// hashkv of a snapshot file gives what `etcdctl endpoint hashkv` gave on
// the member the snapshot was taken from, in etcdutl's formats.
func TestHashKVOfSnapshot(t *testing.T) {
	fx := makeSnapshot(t)
	out, e, code := runCLI("hashkv", fx.file, "-w", "json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, e)
	}
	if want := fmt.Sprintf(`{"hash":%d,"hashRevision":%d,"compactRevision":-1}`+"\n", fx.hash, fx.rev); out != want {
		t.Fatalf("json %q, want %q", out, want)
	}
	for format, want := range map[string]string{
		"simple": fmt.Sprintf("%d, %d, -1\n", fx.hash, fx.rev),
		"fields": fmt.Sprintf("\"Hash\" : %d\n\"Hash revision\" : %d\n\"Compact revision\" : -1\n", fx.hash, fx.rev),
	} {
		if out, e, code := runCLI("hashkv", fx.file, "-w", format); code != 0 || out != want {
			t.Errorf("-w %s: exit %d %q %s; want %q", format, code, out, e, want)
		}
	}
	table, _, _ := runCLI("hashkv", fx.file, "-w", "table")
	if lines := strings.Split(table, "\n"); len(lines) != 6 || !strings.Contains(lines[1], "│ HASH REVISION │ COMPACT REVISION │") ||
		!strings.HasSuffix(lines[3], fmt.Sprintf(" │ %13d │ %16d │", fx.rev, -1)) {
		t.Errorf("table:\n%s", table)
	}
	if _, e, code := runCLI("hashkv", fx.file, "--rev", fmt.Sprint(fx.rev+1)); code != exitError ||
		e != "Error: mvcc: required revision is a future revision\n" {
		t.Errorf("future revision: %d %q", code, e)
	}
	if _, e, code := runCLI("hashkv", fx.file, "-w", "protobuf"); code != exitBadFeature || e != "Error: protobuf not supported as output format\n" {
		t.Errorf("protobuf: %d %q", code, e)
	}
	if _, e, code := runCLI("hashkv", fx.file, "-w", "xml"); code != exitBadFeature || e != "Error: unsupported output format\n" {
		t.Errorf("xml: %d %q", code, e)
	}
	if _, e, code := runCLI("hashkv", filepath.Join(t.TempDir(), "nope")); code != exitError || !strings.HasSuffix(e, "nope: no such file or directory\n") {
		t.Errorf("missing file: %d %q", code, e)
	}
}

// hashkv of a stopped member's data dir gives what the member gave, at
// any revision from its compaction point on, and refuses older ones as
// etcdutl does; a running member's data dir is waited for, then refused.
func TestHashKVOfDataDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	n, cli := startMember(t, "h", dir, "http://127.0.0.1:2380")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for i := 0; i < 10; i++ {
		if _, err := cli.Put(ctx, fmt.Sprint("k", i%3), fmt.Sprint(i)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := cli.Compact(ctx, 6); err != nil {
		t.Fatal(err)
	}
	want := map[int64]uint32{}
	for _, rev := range []int64{6, 8, 11} {
		h, err := cli.HashKV(ctx, n.ClientAddrs()[0], rev)
		if err != nil {
			t.Fatal(err)
		}
		want[rev] = h.Hash
	}
	_, e, code := runCLI("hashkv", dir, "--timeout", "300ms")
	if code != exitError || !strings.Contains(e, "database is in use") {
		t.Fatalf("hashkv of a running member's data dir: %d %q", code, e)
	}
	n.Stop()
	for rev, hash := range want {
		if out, e, code := runCLI("hashkv", dir, "--rev", fmt.Sprint(rev)); code != 0 || out != fmt.Sprintf("%d, %d, 6\n", hash, rev) {
			t.Errorf("--rev %d: exit %d %q %s; want hash %d", rev, code, out, e, hash)
		}
	}
	var latest HashKV
	out, _, _ := runCLI("hashkv", dir, "-w", "json")
	if err := json.Unmarshal([]byte(out), &latest); err != nil || latest != (HashKV{want[11], 11, 6}) {
		t.Errorf("latest: %q %v", out, err)
	}
	if _, e, code := runCLI("hashkv", dir, "--rev", "5"); code != exitError || e != "Error: mvcc: required revision has been compacted\n" {
		t.Errorf("compacted revision: %d %q", code, e)
	}
}
