package node_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/metastore/metastore/node"
)

// A data dir laid out by NewDataDir with a WAL dir is found again by
// ExistingDataDir with that WAL dir, once its DB exists; an empty or
// missing data dir, an etcd data dir and a data dir whose WAL dir lost
// its marker are refused.
func TestOfflineDataDirPaths(t *testing.T) {
	tmp := t.TempDir()
	dataDir, walDir := filepath.Join(tmp, "data"), filepath.Join(tmp, "wal")
	made, err := node.NewDataDir(dataDir, walDir)
	if err != nil {
		t.Fatal(err)
	}
	if want := (node.StoragePaths{DB: filepath.Join(dataDir, "member", "pebble"), WAL: walDir}); made != want {
		t.Fatalf("NewDataDir: %+v, want %+v", made, want)
	}
	if _, err := node.ExistingDataDir(dataDir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a data dir without its DB: %v, want not exist", err)
	}
	if err := os.MkdirAll(made.DB, 0o700); err != nil {
		t.Fatal(err)
	}
	if found, err := node.ExistingDataDir(dataDir); err != nil || found != made {
		t.Fatalf("ExistingDataDir: %+v %v, want %+v", found, err, made)
	}
	if _, err := node.ExistingDataDir(filepath.Join(tmp, "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a missing data dir: %v, want not exist", err)
	}
	if err := os.Remove(filepath.Join(walDir, "metastore-wal.json")); err != nil {
		t.Fatal(err)
	}
	if _, err := node.ExistingDataDir(dataDir); err == nil || !strings.Contains(err.Error(), "holds no WAL of data dir") {
		t.Fatalf("a WAL dir without its marker: %v", err)
	}
	etcdDir := filepath.Join(tmp, "etcd")
	if err := os.MkdirAll(filepath.Join(etcdDir, "member", "wal"), 0o700); err != nil {
		t.Fatal(err)
	}
	if _, err := node.ExistingDataDir(etcdDir); err == nil || !strings.Contains(err.Error(), "is an etcd data dir") {
		t.Fatalf("an etcd data dir: %v", err)
	}
}
