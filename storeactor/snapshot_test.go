package storeactor_test

import (
	"archive/tar"
	"bytes"
	"io"
	"path"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/metastore/metastore/storeactor"
)

// A snapshot is a tar archive of a checkpoint, 512n bytes long as
// announced, and the DB unpacked from it holds what the store held when it
// was taken — not what was written after — and opens as a store.
func TestSnapshotArchiveRoundTrip(t *testing.T) {
	fs := vfs.NewMem()
	db, err := storeactor.OpenPebbleFS(fs, "/data/db")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	h := newHarness(t, func(c *storeactor.Config) { c.DB = db })
	h.put("a", "1")
	h.put("b", "2")

	snap, err := storeactor.NewSnapshotter(db, fs, "/data/snap").Take()
	if err != nil {
		t.Fatal(err)
	}
	h.put("c", "after the snapshot")
	var buf bytes.Buffer
	n, err := snap.WriteTo(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if n != snap.Size() || n%512 != 0 || int64(buf.Len()) != n {
		t.Fatalf("archive %d bytes, announced %d, buffer %d", n, snap.Size(), buf.Len())
	}
	if err := snap.Close(); err != nil {
		t.Fatal(err)
	}
	if names, _ := fs.List("/data/snap"); len(names) != 0 {
		t.Fatalf("checkpoint left behind: %v", names)
	}

	// Unpack into a fresh FS and open it as a store.
	out := vfs.NewMem()
	tr := tar.NewReader(&buf)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if path.Dir(hdr.Name) != storeactor.SnapshotDir {
			t.Fatalf("unexpected entry %q", hdr.Name)
		}
		if err := out.MkdirAll("/restored", 0o700); err != nil {
			t.Fatal(err)
		}
		f, err := out.Create(path.Join("/restored", path.Base(hdr.Name)), vfs.WriteCategoryUnspecified)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(f, tr); err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
	opts := storeactor.PebbleOptions()
	opts.FS = out
	restored, err := pebble.Open("/restored", opts)
	if err != nil {
		t.Fatal(err)
	}
	defer restored.Close()
	r, err := storeactor.NewReader(restored)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := r.Range(&pb.RangeRequest{Key: []byte("a"), RangeEnd: []byte{0}})
	if err != nil {
		t.Fatal(err)
	}
	if got := kvs(resp.Kvs); len(got) != 2 || resp.Header.Revision != 3 {
		t.Fatalf("restored keys %v at revision %d, want a and b at 3", got, resp.Header.Revision)
	}
}
