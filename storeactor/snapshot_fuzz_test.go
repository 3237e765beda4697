package storeactor_test

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"path"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/metastore/metastore/storeactor"
)

// FuzzReceiveCheckpoint unpacks an archive made of the fuzz input, as a
// member does with a snapshot from its leader and `metastoreutl snapshot
// restore` with a file. It must never panic, never write more than the
// archive holds (a few bytes must not become a disk full of zeros), and
// when it accepts the archive, the folder must hold exactly its "db/"
// regular files, with their contents.
func FuzzReceiveCheckpoint(f *testing.F) {
	f.Add(realArchive(f))
	for _, entries := range [][]tarEntry{
		{{name: "db/MANIFEST-000001", body: "manifest"}, {name: "db/000002.sst", body: "table"}},
		{{name: "db/x/../y", body: "cleaned to db/y"}},
		{{name: "db/a", body: "1"}, {name: "db/a", body: "again"}},
		{{name: "etc/passwd", body: "outside"}},
		{{name: "db/../../escape", body: "climbs"}},
		{{name: "db/link", typ: tar.TypeSymlink, link: "/etc/passwd"}},
		{{name: "db/dir", typ: tar.TypeDir}},
		{},
	} {
		f.Add(makeArchive(f, entries))
	}
	f.Add(sparseArchive(1 << 40))
	f.Fuzz(func(t *testing.T, data []byte) {
		fs := &cappedFS{FS: vfs.NewMem(), left: int64(len(data))}
		err := storeactor.ReceiveCheckpoint(fs, "/snap", bytes.NewReader(data))
		if fs.left < 0 {
			t.Fatalf("a %d-byte archive wrote more than it holds (%v)", len(data), err)
		}
		if err != nil {
			return
		}
		want := dbFiles(t, data)
		names, lerr := fs.List("/snap")
		if lerr != nil {
			t.Fatal(lerr)
		}
		slices.Sort(names)
		if !slices.Equal(names, slices.Sorted(maps.Keys(want))) {
			t.Fatalf("unpacked %q, the archive holds %q", names, slices.Sorted(maps.Keys(want)))
		}
		for name, body := range want {
			got, rerr := readFile(fs, path.Join("/snap", name))
			if rerr != nil || got != body {
				t.Fatalf("%s: %d bytes (%v), want %d", name, len(got), rerr, len(body))
			}
		}
	})
}

// dbFiles lists an accepted archive's files by base name, read with
// archive/tar directly.
func dbFiles(t *testing.T, data []byte) map[string]string {
	t.Helper()
	files := map[string]string{}
	tr := tar.NewReader(bytes.NewReader(data))
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return files
		}
		if err != nil {
			t.Fatalf("accepted an archive archive/tar refuses: %v", err)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatalf("accepted an archive archive/tar cannot read: %v", err)
		}
		if hdr.Typeflag != tar.TypeReg || path.Dir(path.Clean(hdr.Name)) != storeactor.SnapshotDir {
			t.Fatalf("accepted entry %q of type %q", hdr.Name, hdr.Typeflag)
		}
		files[path.Base(path.Clean(hdr.Name))] = string(b)
	}
}

func readFile(fs vfs.FS, name string) (string, error) {
	f, err := fs.Open(name)
	if err != nil {
		return "", err
	}
	defer f.Close()
	b, err := io.ReadAll(f)
	return string(b), err
}

// cappedFS fails writes once left bytes have been written in all.
type cappedFS struct {
	vfs.FS
	left int64
}

var errCapped = errors.New("cappedFS: more written than the archive holds")

func (c *cappedFS) Create(name string, cat vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := c.FS.Create(name, cat)
	if err != nil {
		return nil, err
	}
	return &cappedFile{File: f, fs: c}, nil
}

type cappedFile struct {
	vfs.File
	fs *cappedFS
}

func (f *cappedFile) Write(p []byte) (int, error) {
	if f.fs.left -= int64(len(p)); f.fs.left < 0 {
		return 0, errCapped
	}
	return f.File.Write(p)
}

type tarEntry struct {
	name, body, link string
	typ              byte
}

func makeArchive(tb testing.TB, entries []tarEntry) []byte {
	tb.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, e := range entries {
		typ := e.typ
		if typ == 0 {
			typ = tar.TypeReg
		}
		hdr := &tar.Header{Name: e.name, Typeflag: typ, Linkname: e.link, Mode: 0o600, Size: int64(len(e.body)), Format: tar.FormatUSTAR}
		if typ != tar.TypeReg {
			hdr.Size = 0
		}
		if err := tw.WriteHeader(hdr); err != nil {
			tb.Fatal(err)
		}
		if _, err := io.WriteString(tw, e.body); err != nil && typ == tar.TypeReg {
			tb.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		tb.Fatal(err)
	}
	return b.Bytes()
}

// realArchive is a snapshot of a small store, as Maintenance.Snapshot
// writes it.
func realArchive(tb testing.TB) []byte {
	tb.Helper()
	fs := vfs.NewMem()
	db, err := storeactor.OpenPebbleFS(fs, "/data/db")
	if err != nil {
		tb.Fatal(err)
	}
	defer db.Close()
	if err := db.Set([]byte("k"), []byte("v"), pebble.Sync); err != nil {
		tb.Fatal(err)
	}
	snap, err := storeactor.NewSnapshotter(db, fs, "/data/snap").Take()
	if err != nil {
		tb.Fatal(err)
	}
	defer snap.Close()
	var b bytes.Buffer
	if _, err := snap.WriteTo(&b); err != nil {
		tb.Fatal(err)
	}
	return b.Bytes()
}

// sparseArchive is a PAX (GNU 1.0) sparse file "db/x" of size bytes, all
// hole but its last byte: a few KiB that archive/tar expands to size.
func sparseArchive(size int64) []byte {
	record := func(k, v string) string {
		s := " " + k + "=" + v + "\n"
		n := len(s)
		for l := len(strconv.Itoa(n)) + len(s); l != n; l = len(strconv.Itoa(n)) + len(s) {
			n = l
		}
		return strconv.Itoa(n) + s
	}
	header := func(name string, typ byte, n int) []byte {
		b := make([]byte, 512)
		copy(b, name)
		copy(b[100:], "0000600\x00")
		copy(b[108:], "0000000\x00")
		copy(b[116:], "0000000\x00")
		copy(b[124:], fmt.Sprintf("%011o\x00", n))
		copy(b[136:], "00000000000\x00")
		b[156] = typ
		copy(b[257:], "ustar\x0000")
		copy(b[148:], "        ")
		sum := 0
		for _, c := range b {
			sum += int(c)
		}
		copy(b[148:], fmt.Sprintf("%06o\x00 ", sum))
		return b
	}
	pad := func(b []byte) []byte { return append(b, make([]byte, (512-len(b)%512)%512)...) }
	pax := record("GNU.sparse.major", "1") + record("GNU.sparse.minor", "0") +
		record("GNU.sparse.name", "db/x") + record("GNU.sparse.realsize", strconv.FormatInt(size, 10))
	body := append(pad([]byte(strings.Join([]string{"1", strconv.FormatInt(size-1, 10), "1", ""}, "\n"))), 'x')
	out := append(header("pax", tar.TypeXHeader, len(pax)), pad([]byte(pax))...)
	out = append(append(out, header("db/x", tar.TypeReg, len(body))...), pad(body)...)
	return append(out, make([]byte, 1024)...)
}
