package storeactor_test

import (
	"io"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/metastore/metastore/storeactor"
)

// Every snapshot transfer removes its checkpoint (a full copy of the DB)
// by the time its reader is closed: after a complete read, and after a
// transfer given up half way (the peer or client went away).
func TestSnapshotReaderCloseRemovesCheckpoint(t *testing.T) {
	fs := vfs.NewMem()
	h := newHarness(t, onMemFS(t, fs, "/data/db"))
	h.put("a", "1")
	snaps := storeactor.NewSnapshotter(h.cfg.DB, fs, "/data/snap")

	for _, tc := range []struct {
		name string
		read func(io.Reader) error
	}{
		{"complete", func(r io.Reader) error { _, err := io.Copy(io.Discard, r); return err }},
		{"abandoned", func(r io.Reader) error { _, err := io.ReadFull(r, make([]byte, 100)); return err }},
		{"unread", func(io.Reader) error { return nil }},
	} {
		data, err := snaps.Open()
		if err != nil {
			t.Fatal(err)
		}
		if names, _ := fs.List("/data/snap"); len(names) != 1 {
			t.Fatalf("%s: checkpoints while open: %v", tc.name, names)
		}
		if err := tc.read(data); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if err := data.Close(); err != nil {
			t.Fatalf("%s: close: %v", tc.name, err)
		}
		if names, _ := fs.List("/data/snap"); len(names) != 0 {
			t.Fatalf("%s: left behind after Close: %v", tc.name, names)
		}
	}
}

// The store removes a received checkpoint, and the table it made from it,
// once it has read it: after an install, after an install that failed, and
// after one that panicked.
func TestInstallSnapshotRemovesReceivedCheckpoint(t *testing.T) {
	fs := vfs.NewMem()
	leader := newHarness(t, onMemFS(t, fs, "/leader"))
	leader.put("a", "1")
	follower := newHarness(t, onMemFS(t, fs, "/follower"))

	install := func(what string) error {
		t.Helper()
		reply := make(chan error, 1)
		follower.kit.Root().Send(follower.pid, &storeactor.InstallSnapshot{FS: fs, Dir: "/recv/1", Reply: reply})
		err := <-reply
		if names, _ := fs.List("/recv"); len(names) != 0 {
			t.Fatalf("%s: left behind: %v", what, names)
		}
		return err
	}

	shipCheckpoint(t, leader.cfg.DB, fs, "/recv/1")
	if err := install("installed"); err != nil {
		t.Fatal(err)
	}

	// Not a pebble DB: the install fails, nothing changes.
	if err := fs.MkdirAll("/recv/1", 0o700); err != nil {
		t.Fatal(err)
	}
	f, err := fs.Create("/recv/1/MANIFEST-000001", vfs.WriteCategoryUnspecified)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	if err := install("failed"); err == nil {
		t.Fatal("installed an empty manifest")
	}

	leader.stop()
	storeactor.BreakRevision(leader.cfg.DB)
	shipCheckpoint(t, leader.cfg.DB, fs, "/recv/1")
	if err := install("panicked"); err == nil {
		t.Fatal("installed a checkpoint whose revision cannot be read")
	}
}
