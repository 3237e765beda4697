package main

import (
	"errors"
	"fmt"
	"os"

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
	if err := checkFormat(c.g.writeOut); err != nil {
		return c.fail(exitBadFeature, err)
	}
	st, err := readStatus(args[0])
	if err != nil {
		return c.fail(exitError, err)
	}
	return c.print(st.result())
}

// readStatus reads the status of the store in a snapshot file.
func readStatus(file string) (st Status, err error) {
	err = withSnapshotDB(file, func(db *pebble.DB, size int64) error {
		st, err = storeStatus(db)
		st.TotalSize, st.Version = size, node.StorageVersion
		return err
	})
	return st, err
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

// result lays st out as etcdutl's printers lay out a DBStatus.
func (st Status) result() result {
	return result{
		header: []string{"hash", "revision", "total keys", "total size", "version"},
		row: []string{fmt.Sprintf("%x", st.Hash), fmt.Sprint(st.Revision), fmt.Sprint(st.TotalKey),
			humanBytes(uint64(st.TotalSize)), st.Version},
		json: st,
		fields: []field{{"Hash", st.Hash}, {"Revision", st.Revision}, {"Keys", st.TotalKey},
			{"Size", st.TotalSize}, {"Version", st.Version}},
	}
}
