package main

import (
	"fmt"
	"path/filepath"

	"go.etcd.io/etcd/server/v3/storage/wal"
	"go.etcd.io/etcd/server/v3/storage/wal/walpb"
	"go.etcd.io/raft/v3/raftpb"
	"go.uber.org/zap"
)

// An etcd member applies committed entries to its backend, which it
// commits every 100 ms (and when it stops cleanly); a member that crashed
// has entries in its WAL that are committed but not in its backend — it
// applies them again when it restarts. A migration reads the backend
// alone, so it would lose them: checkEtcdWAL refuses such a data dir.

// checkEtcdWAL returns an error when the WAL of the etcd data dir holds
// committed entries, with data, past the backend's consistent index.
func checkEtcdWAL(lg *zap.Logger, dataDir string, consistentIndex uint64) error {
	walDir := filepath.Join(dataDir, "member", "wal")
	if !wal.Exist(walDir) {
		return nil // a backend copied alone, without its WAL
	}
	n, err := unappliedEntries(walDir, consistentIndex)
	if err != nil {
		return fmt.Errorf("cannot read the WAL of etcd data dir %s to check that its backend holds every committed entry: %w", dataDir, err)
	}
	if n > 0 {
		return fmt.Errorf("etcd data dir %s has %d committed entries that its backend does not hold yet "+
			"(etcd did not stop cleanly, or stopped before applying what it had just committed): start etcd on it once, "+
			"stop it cleanly once 'etcdctl endpoint status' shows its RAFT APPLIED INDEX at its RAFT INDEX, or migrate a snapshot ('etcdctl snapshot save')", dataDir, n)
	}
	lg.Info("checked etcd's WAL: its backend holds every committed entry", zap.String("wal-dir", walDir),
		zap.Uint64("consistent-index", consistentIndex))
	return nil
}

// unappliedEntries counts the normal entries with data that the WAL in
// walDir holds as committed after index.
func unappliedEntries(walDir string, index uint64) (int, error) {
	snaps, err := wal.ValidSnapshotEntries(zap.NewNop(), walDir)
	if err != nil {
		return 0, err
	}
	snap := &walpb.Snapshot{}
	if len(snaps) > 0 {
		snap = snaps[len(snaps)-1]
	}
	w, err := wal.OpenForRead(zap.NewNop(), walDir, snap)
	if err != nil {
		return 0, err
	}
	_, hs, ents, err := w.ReadAll()
	// A WAL opened for reading has no directory handle, which its Close
	// closes anyway: its error says nothing.
	_ = w.Close()
	if err != nil {
		return 0, err
	}
	n := 0
	for _, e := range ents {
		if i := e.GetIndex(); i > index && i <= hs.GetCommit() && e.GetType() == raftpb.EntryNormal && len(e.GetData()) > 0 {
			n++
		}
	}
	return n, nil
}
