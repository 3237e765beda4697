package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"unicode/utf8"

	"github.com/cockroachdb/pebble/v2"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/metastore/metastore/node"
	"github.com/metastore/metastore/storeactor"
)

// Status is what `snapshot status` reports, under etcdutl's names and JSON
// keys. The meanings are MetaStore's:
//
//   - hash: the CRC-32C KV hash of the snapshot at its revision — the
//     value `etcdctl endpoint hashkv --rev=<revision>` gives on a live
//     member holding the same history (storeactor.Reader.HashKV). etcd's
//     is instead a CRC-32C over every bucket of its bbolt file.
//   - revision: the store's current revision in the snapshot.
//   - totalKey: the number of keys visible at that revision (each key
//     counted once, deleted keys not counted; leases, users, roles and
//     other metadata not counted) — etcd counts the same set.
//   - totalSize: the snapshot file's size in bytes, SHA-256 trailer
//     included (etcd: its bbolt file's size).
//   - version: the storage version of the format ("3.7.0"), the one
//     MetaStore sends with Maintenance.Snapshot. The file does not record
//     it: this build reads only its own format, so it reports its own.
type Status struct {
	Hash      uint32 `json:"hash"`
	Revision  int64  `json:"revision"`
	TotalKey  int    `json:"totalKey"`
	TotalSize int64  `json:"totalSize"`
	Version   string `json:"version"`
}

func snapshotStatusCommand() *command {
	return &command{
		path:  "snapshot status",
		use:   "snapshot status <filename> [flags]",
		short: "Gets backend snapshot status of a given file",
		long: `When --write-out is set to simple, this command prints out comma-separated status lists for each endpoint.
The items in the lists are hash, revision, total keys, total size.

The file's SHA-256 trailer is checked first. Then, for MetaStore's snapshots:
hash is the CRC-32C KV hash at the snapshot's revision (what
'etcdctl endpoint hashkv --rev=<revision>' reports on a member with the same
history); revision is the store's revision; total keys counts the keys
visible at that revision (deleted keys, leases, users and roles excluded);
total size is the file's size; version is the snapshot's storage version.
`,
		run: snapshotStatus,
	}
}

func snapshotStatus(c *cli, args []string) int {
	if len(args) != 1 {
		return c.fail(exitBadArgs, errors.New("snapshot status requires exactly one argument"))
	}
	if _, err := os.Stat(args[0]); err != nil {
		return c.fail(exitError, err)
	}
	p, code, err := newPrinter(c.g.writeOut)
	if err != nil {
		return c.fail(code, err)
	}
	st, err := readStatus(args[0])
	if err != nil {
		return c.fail(exitError, err)
	}
	p(c.stdout, st)
	return exitSuccess
}

// readStatus checks the file, unpacks it into a temporary directory and
// reads the store in it.
func readStatus(file string) (Status, error) {
	s, err := openSnapshot(file, false)
	if err != nil {
		return Status{}, err
	}
	defer s.Close()
	tmp, err := os.MkdirTemp("", "metastoreutl-status-")
	if err != nil {
		return Status{}, err
	}
	defer os.RemoveAll(tmp)
	dir := filepath.Join(tmp, "db")
	if err := s.unpack(dir, true, nil); err != nil {
		return Status{}, err
	}
	opts := storeactor.PebbleOptions()
	opts.ReadOnly, opts.ErrorIfNotExists = true, true
	db, err := pebble.Open(dir, opts)
	if err != nil {
		return Status{}, fmt.Errorf("%s: cannot open the database: %w", errIntegrity, err)
	}
	defer db.Close()
	st, err := storeStatus(db)
	if err != nil {
		return Status{}, err
	}
	st.TotalSize, st.Version = s.size, node.StorageVersion
	return st, nil
}

// storeStatus reads hash, revision and key count from a store's DB.
func storeStatus(db *pebble.DB) (Status, error) {
	r, err := storeactor.NewReader(db)
	if err != nil {
		return Status{}, err
	}
	v := r.View()
	h, err := r.HashKV(v.Rev)
	if err != nil {
		return Status{}, fmt.Errorf("hash: %w", err)
	}
	resp, err := r.Range(&pb.RangeRequest{Key: []byte{0}, RangeEnd: []byte{0}, CountOnly: true})
	if err != nil {
		return Status{}, fmt.Errorf("count keys: %w", err)
	}
	return Status{Hash: h.Hash, Revision: v.Rev, TotalKey: int(resp.Count)}, nil
}

// Printers, as etcdutl's for DBStatus.

type printer func(w io.Writer, st Status)

func newPrinter(format string) (printer, int, error) {
	switch format {
	case "simple":
		return func(w io.Writer, st Status) {
			_, rows := statusTable(st)
			for _, r := range rows {
				fmt.Fprintln(w, strings.Join(r, ", "))
			}
		}, 0, nil
	case "table":
		return func(w io.Writer, st Status) {
			hdr, rows := statusTable(st)
			printTable(w, hdr, rows)
		}, 0, nil
	case "json":
		return func(w io.Writer, st Status) {
			b, err := json.Marshal(st)
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				return
			}
			fmt.Fprintln(w, string(b))
		}, 0, nil
	case "fields":
		return func(w io.Writer, st Status) {
			fmt.Fprintln(w, `"Hash" :`, st.Hash)
			fmt.Fprintln(w, `"Revision" :`, st.Revision)
			fmt.Fprintln(w, `"Keys" :`, st.TotalKey)
			fmt.Fprintln(w, `"Size" :`, st.TotalSize)
			fmt.Fprintln(w, `"Version" :`, st.Version)
		}, 0, nil
	case "protobuf":
		return nil, exitBadFeature, errors.New("protobuf not supported as output format")
	}
	return nil, exitBadFeature, errors.New("unsupported output format")
}

func statusTable(st Status) (hdr []string, rows [][]string) {
	hdr = []string{"hash", "revision", "total keys", "total size", "version"}
	rows = append(rows, []string{
		fmt.Sprintf("%x", st.Hash),
		fmt.Sprint(st.Revision),
		fmt.Sprint(st.TotalKey),
		humanBytes(uint64(st.TotalSize)),
		st.Version,
	})
	return hdr, rows
}

// printTable draws the table etcdutl's tablewriter draws: upper-case
// centred headers, right-aligned cells, box-drawing borders.
func printTable(w io.Writer, hdr []string, rows [][]string) {
	width := make([]int, len(hdr))
	for i, h := range hdr {
		width[i] = utf8.RuneCountInString(h)
	}
	for _, r := range rows {
		for i, c := range r {
			width[i] = max(width[i], utf8.RuneCountInString(c))
		}
	}
	line := func(l, m, r string) {
		var b strings.Builder
		b.WriteString(l)
		for i, n := range width {
			if i > 0 {
				b.WriteString(m)
			}
			b.WriteString(strings.Repeat("─", n+2))
		}
		b.WriteString(r)
		fmt.Fprintln(w, b.String())
	}
	cells := func(cs []string, align func(s string, n int) string) {
		var b strings.Builder
		b.WriteString("│")
		for i, c := range cs {
			b.WriteString(" " + align(c, width[i]) + " │")
		}
		fmt.Fprintln(w, b.String())
	}
	center := func(s string, n int) string {
		pad := n - utf8.RuneCountInString(s)
		return strings.Repeat(" ", pad/2) + s + strings.Repeat(" ", pad-pad/2)
	}
	right := func(s string, n int) string { return strings.Repeat(" ", n-utf8.RuneCountInString(s)) + s }
	upper := make([]string, len(hdr))
	for i, h := range hdr {
		upper[i] = strings.ToUpper(h)
	}
	line("┌", "┬", "┐")
	cells(upper, center)
	line("├", "┼", "┤")
	for _, r := range rows {
		cells(r, right)
	}
	line("└", "┴", "┘")
}

// humanBytes formats n in SI units as go-humanize's Bytes does ("20 kB").
func humanBytes(n uint64) string {
	if n < 10 {
		return fmt.Sprintf("%d B", n)
	}
	sizes := []string{"B", "kB", "MB", "GB", "TB", "PB", "EB"}
	e := math.Floor(math.Log(float64(n)) / math.Log(1000))
	val := math.Floor(float64(n)/math.Pow(1000, e)*10+0.5) / 10
	f := "%.0f %s"
	if val < 10 {
		f = "%.1f %s"
	}
	return fmt.Sprintf(f, val, sizes[int(e)])
}
