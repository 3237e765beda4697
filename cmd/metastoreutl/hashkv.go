package main

import (
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"

	"github.com/metastore/metastore/node"
	"github.com/metastore/metastore/storeactor"
)

// HashKV is what `hashkv` reports, under etcdutl's names and JSON keys:
// the hash `etcdctl endpoint hashkv --rev` gives on a member holding the
// same history (storeactor.Reader.HashKV: members that applied the same
// revisions agree on it; its values are not comparable with etcd's), the
// revision hashed and the compaction point (-1: never compacted).
type HashKV struct {
	Hash            uint32 `json:"hash"`
	HashRevision    int64  `json:"hashRevision"`
	CompactRevision int64  `json:"compactRevision"`
}

func hashKVCommand() *command {
	var rev int64
	return &command{
		path:  "hashkv",
		use:   "hashkv <filename>",
		short: "Prints the KV history hash of a given file",
		long: `<filename> is a stopped member's data directory (its DB is <data-dir>/member/pebble,
with the WAL directory the data directory records), or a snapshot file
('etcdctl snapshot save'), whose SHA-256 is checked first.
`,
		flags: func(fs *pflag.FlagSet) {
			fs.Int64Var(&rev, "rev", 0, "maximum revision to hash (default: latest revision)")
		},
		setup: func(cc *cobra.Command) { cc.Args = cobra.ExactArgs(1) },
		run: func(c *cli, args []string) int {
			if err := checkFormat(c.g.writeOut); err != nil {
				return c.fail(exitBadFeature, err)
			}
			h, err := hashKV(args[0], rev, c.g.timeout)
			if err != nil {
				return c.fail(exitError, err)
			}
			return c.print(h.result())
		},
	}
}

// hashKV hashes the store of a data dir or a snapshot file at rev (0: its
// current revision). A data dir a running member holds is waited for up
// to timeout, as etcdutl waits for its DB file's lock.
func hashKV(path string, rev int64, timeout time.Duration) (HashKV, error) {
	st, err := os.Stat(path)
	if err != nil {
		return HashKV{}, err
	}
	if !st.IsDir() {
		var h HashKV
		err := withSnapshotDB(path, func(db *pebble.DB, _ int64) (err error) {
			h, err = storeHashKV(db, rev)
			return err
		})
		return h, err
	}
	paths, err := node.ExistingDataDir(path)
	if err != nil {
		return HashKV{}, err
	}
	db, err := openLocked(paths, timeout, true)
	if err != nil {
		return HashKV{}, err
	}
	defer db.Close()
	return storeHashKV(db, rev)
}

func storeHashKV(db *pebble.DB, rev int64) (HashKV, error) {
	r, err := storeactor.NewReader(db)
	if err != nil {
		return HashKV{}, err
	}
	h, err := r.HashKV(rev)
	switch {
	case errors.Is(err, rpctypes.ErrGRPCCompacted):
		return HashKV{}, errors.New("mvcc: required revision has been compacted")
	case errors.Is(err, rpctypes.ErrGRPCFutureRev):
		return HashKV{}, errors.New("mvcc: required revision is a future revision")
	case err != nil:
		return HashKV{}, err
	}
	return HashKV{Hash: h.Hash, HashRevision: h.Revision, CompactRevision: h.CompactRevision}, nil
}

// result lays h out as etcdutl's printers lay out a HashKV.
func (h HashKV) result() result {
	return result{
		header: []string{"hash", "hash revision", "compact revision"},
		row:    []string{fmt.Sprint(h.Hash), fmt.Sprint(h.HashRevision), fmt.Sprint(h.CompactRevision)},
		json:   h,
		fields: []field{{"Hash", h.Hash}, {"Hash revision", h.HashRevision}, {"Compact revision", h.CompactRevision}},
	}
}
