// Package nodetest starts in-process MetaStore members for tests: the
// configuration every test member shares, a start that waits until the
// member serves and stops it when the test ends, and a client of it.
// Tests import it; the server does not.
//
// Client listeners bind port 0 (node.Node.ClientAddrs reads the port
// back), so no other process can take a client port between its choice
// and the bind. Peer URLs must be known before any member of a cluster
// starts (each names the others), so they come from testkit.FreePort,
// whose ports no other test process is handed while this one runs.
package nodetest

import (
	"fmt"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/metastore/metastore/node"
	"github.com/metastore/metastore/testkit"
)

// Config is a member named name with its files under dataDir (on the
// OS's disk unless the caller sets InMemory or FS), serving clients on a
// loopback port of its own, with etcd's defaults and short raft timings
// (a heartbeat of 100 ms, an election timeout of 1 s), and a silent log.
// It has no peer listener and no cluster: the caller adds them (Lone and
// Member do).
func Config(name, dataDir string) node.Config {
	client := []string{"http://127.0.0.1:0"}
	return node.Config{
		Name: name, DataDir: dataDir,
		ListenClientURLs: client, AdvertiseClientURLs: client,
		InitialClusterState: "new",
		SnapshotCount:       10000, SnapshotCatchUpEntries: 5000, MaxLearners: 1,
		HeartbeatInterval: 100 * time.Millisecond, ElectionTimeout: time.Second,
		QuotaBackendBytes: 2 << 30, MaxRequestBytes: 1.5 * 1024 * 1024, MaxTxnOps: 128,
		WatchProgressNotifyInterval: 10 * time.Minute, BcryptCost: 4, AuthTokenTTL: 300 * time.Second,
		Logger: zap.NewNop(),
	}
}

// Lone is a one-member cluster (named name, token name) with its pebble
// in memory and its other files, such as auto TLS certificates, under
// dataDir. Its peer URL is advertised, never bound: it has no peers.
func Lone(name, dataDir string) node.Config {
	cfg := Config(name, dataDir)
	cfg.InMemory = true
	cfg.InitialCluster = map[string][]string{name: {"http://127.0.0.1:1"}}
	cfg.InitialClusterToken = name
	return cfg
}

// Member is member name of a new cluster of peers (name -> peer URLs)
// with token, listening on its own peer URLs, its pebble in memory under
// /name, with etcd's --strict-reconfig-check.
func Member(name string, peers map[string][]string, token string) node.Config {
	cfg := Config(name, "/"+name)
	cfg.InMemory = true
	cfg.ListenPeerURLs, cfg.InitialAdvertisePeerURLs = peers[name], peers[name]
	cfg.InitialCluster, cfg.InitialClusterToken = peers, token
	cfg.StrictReconfigCheck = true
	return cfg
}

// Peers gives each of names a peer URL of its own (FreeURL).
func Peers(t testing.TB, names ...string) map[string][]string {
	peers := make(map[string][]string, len(names))
	for _, name := range names {
		peers[name] = []string{FreeURL(t)}
	}
	return peers
}

// FreeURL is an http URL on a loopback port that no other test process
// was handed (testkit.FreePort), for a listener whose address must be
// known before it binds: a member's peers, or clients that reach it again
// after it restarts.
func FreeURL(t testing.TB) string {
	return fmt.Sprintf("http://127.0.0.1:%d", testkit.FreePort(t))
}
