package main

import (
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/server/v3/lease/leasepb"

	"github.com/metastore/metastore/e2e"
	"github.com/metastore/metastore/etcdbackend"
	"github.com/metastore/metastore/storeactor"
)

// TestBenchMigrate times `metastoreutl migrate from-etcd` against
// `etcdutl snapshot restore` of the same etcd snapshot file, in one run:
// wall time, CPU time and peak RSS of each tool, then how long each server
// takes to start on the result. Not part of `make test`: run it with
// `make bench-migrate` (METASTORE_BENCH_MIGRATE=1).
//
// The snapshot is generated with etcdbackend.Writer in etcd's layout (key
// bucket in revision order, pages filled to 90% as etcd's sequential puts
// fill them): MIGRATE_BENCH_KEYS keys (default 2,000,000) of
// MIGRATE_BENCH_VALUE bytes (default 340), about 1 GiB; a tenth of
// them overwritten after a compaction at half, a thousand leases holding
// a tenth of the keys. MIGRATE_BENCH_VALUES says what the values are:
// "random" (default: bytes no compressor shrinks, the worst case for a
// migration that writes compressed tables while etcdutl copies the file)
// or "objects" (Kubernetes-like JSON objects, each with its own name, uid,
// timestamps and resourceVersion: what an apiserver's etcd holds).
// MIGRATE_BENCH_DIR sets where files go (default a temp dir; needs ~4x the
// snapshot's size).
func TestBenchMigrate(t *testing.T) {
	if os.Getenv("METASTORE_BENCH_MIGRATE") == "" {
		t.Skip("set METASTORE_BENCH_MIGRATE=1 (make bench-migrate) to run the migration benchmark")
	}
	keys, valueSize := envInt(t, "MIGRATE_BENCH_KEYS", 2_000_000), envInt(t, "MIGRATE_BENCH_VALUE", 340)
	dir := os.Getenv("MIGRATE_BENCH_DIR")
	if dir == "" {
		dir = t.TempDir()
	} else {
		var err error
		dir, err = os.MkdirTemp(dir, "bench-migrate-")
		must(t, err)
		defer os.RemoveAll(dir)
	}
	snap := filepath.Join(dir, "etcd.snapshot")
	start := time.Now()
	values := os.Getenv("MIGRATE_BENCH_VALUES")
	if values == "" {
		values = "random"
	}
	if values != "random" && values != "objects" {
		t.Fatalf("MIGRATE_BENCH_VALUES=%q: want random or objects", values)
	}
	rev, versions := writeBenchSnapshot(t, snap, keys, valueSize, values == "objects")
	st, err := os.Stat(snap)
	must(t, err)
	t.Logf("generated %s: %d keys (%s values), %d versions, revision %d, %.2f GiB in %v", snap, keys, values, versions, rev,
		float64(st.Size())/(1<<30), time.Since(start).Round(time.Millisecond))

	util := filepath.Join(dir, "metastoreutl")
	if out, err := exec.Command("go", "build", "-o", util, ".").CombinedOutput(); err != nil {
		t.Fatalf("build metastoreutl: %v\n%s", err, out)
	}
	etcdPeer, msPeer := e2e.FreePort(t), e2e.FreePort(t)
	flags := func(name string, peer int) []string {
		url := fmt.Sprintf("http://127.0.0.1:%d", peer)
		return []string{"--name", name, "--initial-cluster", name + "=" + url, "--initial-advertise-peer-urls", url}
	}
	etcdDir, msDir := filepath.Join(dir, "etcd"), filepath.Join(dir, "ms")
	etcdutl := timeCmd(t, e2e.RefBin(t, "etcdutl"), append([]string{"snapshot", "restore", snap, "--data-dir", etcdDir}, flags("e", etcdPeer)...)...)
	migrate := timeCmd(t, util, append([]string{"migrate", "from-etcd", snap, "--data-dir", msDir}, flags("m", msPeer)...)...)

	// Then each server starts on its result: etcd rebuilds its index of
	// every version from the backend as it starts, MetaStore reads its
	// index from pebble.
	start = time.Now()
	ref := e2e.StartEtcd(t, e2e.WithName("e"), e2e.WithDataDir(etcdDir), e2e.WithPorts(e2e.FreePort(t), etcdPeer), e2e.WithStartTimeout(5*time.Minute))
	etcdStart := time.Since(start)
	ref.Stop()
	start = time.Now()
	ms := e2e.StartMetaStore(t, e2e.WithName("m"), e2e.WithDataDir(msDir), e2e.WithPorts(e2e.FreePort(t), msPeer), e2e.WithStartTimeout(5*time.Minute))
	msStart := time.Since(start)
	ms.Stop()
	t.Logf("ready to serve: etcd after %v, MetaStore after %v", etcdStart.Round(10*time.Millisecond), msStart.Round(10*time.Millisecond))

	// The result holds what was generated.
	opts := storeactor.PebbleOptions()
	opts.ReadOnly = true
	db, err := pebble.Open(filepath.Join(dir, "ms", "member", "pebble"), opts)
	must(t, err)
	defer db.Close()
	r, err := storeactor.NewReader(db)
	must(t, err)
	count, err := r.Range(&pb.RangeRequest{Key: []byte{0}, RangeEnd: []byte{0}, CountOnly: true})
	must(t, err)
	if v := r.View(); v.Rev != rev || count.Count != int64(keys) {
		t.Fatalf("migrated: revision %d, %d keys; generated %d, %d", v.Rev, count.Count, rev, keys)
	}

	round := func(d time.Duration) time.Duration { return d.Round(10 * time.Millisecond) }
	report := fmt.Sprintf("| snapshot | keys | versions | | etcdutl snapshot restore | metastoreutl migrate from-etcd | migrate / restore |\n"+
		"|---|---|---|---|---|---|---|\n"+
		"| %.2f GiB | %d | %d | tool: wall | %v | %v | %.2f |\n"+
		"| | | | tool: CPU (user+sys) | %v | %v | %.2f |\n"+
		"| | | | tool: peak RSS | %d MiB | %d MiB | %.2f |\n"+
		"| | | | then server start until ready | %v | %v | |\n"+
		"| | | | tool + start | %v | %v | %.2f |\n",
		float64(st.Size())/(1<<30), keys, versions,
		round(etcdutl.took), round(migrate.took), migrate.took.Seconds()/etcdutl.took.Seconds(),
		round(etcdutl.cpu), round(migrate.cpu), migrate.cpu.Seconds()/etcdutl.cpu.Seconds(),
		etcdutl.rssMiB, migrate.rssMiB, float64(migrate.rssMiB)/float64(etcdutl.rssMiB),
		round(etcdStart), round(msStart),
		round(etcdutl.took+etcdStart), round(migrate.took+msStart), (migrate.took+msStart).Seconds()/(etcdutl.took+etcdStart).Seconds())
	t.Log("\n" + report)
}

type timing struct {
	took   time.Duration // wall time
	cpu    time.Duration // user + system
	rssMiB int64
}

// timeCmd runs a command to completion and returns its wall time and peak
// resident memory.
func timeCmd(t *testing.T, bin string, args ...string) timing {
	t.Helper()
	cmd := exec.Command(bin, args...)
	// What the previous step left dirty in the page cache is written
	// now, not while this command syncs its own files.
	syscall.Sync()
	start := time.Now()
	out, err := cmd.CombinedOutput()
	took := time.Since(start)
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", bin, args, err, out)
	}
	ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	cpu := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	t.Logf("%s %s: %v, %v CPU, max RSS %d MiB", filepath.Base(bin), args[0], took.Round(time.Millisecond), cpu.Round(time.Millisecond), ru.Maxrss/1024)
	return timing{took: took, cpu: cpu, rssMiB: ru.Maxrss / 1024}
}

func envInt(t *testing.T, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		t.Fatalf("%s=%q: want a positive number", name, v)
	}
	return n
}

// writeBenchSnapshot writes the benchmark's etcd snapshot file and returns
// its current revision and number of versions.
func writeBenchSnapshot(t *testing.T, path string, keys, valueSize int, objects bool) (rev int64, versions int) {
	t.Helper()
	w, err := etcdbackend.Create(path)
	must(t, err)
	rng := rand.New(rand.NewPCG(1, 2))
	value := make([]byte, valueSize)
	key := func(i int) []byte { return fmt.Appendf(nil, "/registry/pods/ns-%04d/pod-%08d", i%1000, i) }
	const leases = 1000
	put := func(i int, create, version int64) {
		rev++
		if objects {
			value = appendObject(value[:0], rng, i, rev, valueSize)
		} else {
			for j := 0; j+8 <= len(value); j += 8 {
				v := rng.Uint64()
				for b := range 8 {
					value[j+b] = byte(v >> (8 * b))
				}
			}
		}
		var lease int64
		if i%10 == 0 {
			lease = int64(1 + i/10%leases)
		}
		if create == 0 {
			create = rev
		}
		must(t, w.PutVersion(rev, 0, false, &mvccpb.KeyValue{Key: key(i), CreateRevision: create, Version: version, Value: value, Lease: lease}))
		versions++
	}
	rev = 1
	for i := range keys {
		put(i, 0, 1)
	}
	compact := rev / 2
	for i := 0; i < keys; i += 10 {
		put(i, int64(i+2), 2)
	}
	for id := int64(1); id <= leases; id++ {
		must(t, w.PutLease(&leasepb.Lease{ID: id, TTL: 3600}))
	}
	must(t, w.SetMeta(etcdbackend.Meta{ConsistentIndex: uint64(rev), Term: 2, ScheduledCompact: compact, FinishedCompact: compact,
		StorageVersion: etcdbackend.StorageVersion, AuthRevision: 1}))
	must(t, w.Close())
	must(t, etcdbackend.AppendChecksum(path))
	return rev, versions
}

// appendObject appends a Kubernetes-like JSON object of about size bytes:
// the fields every object of a kind shares, and what is its own (name,
// uid, timestamps, resourceVersion, a node, an IP, a container hash),
// padded with annotations.
func appendObject(dst []byte, rng *rand.Rand, i int, rev int64, size int) []byte {
	start := len(dst)
	dst = fmt.Appendf(dst, `{"kind":"Pod","apiVersion":"v1","metadata":{"name":"pod-%08d","namespace":"ns-%04d",`+
		`"uid":"%08x-%04x-%04x-%04x-%012x","resourceVersion":"%d","creationTimestamp":"2026-12-%02dT%02d:%02d:%02dZ",`+
		`"labels":{"app":"web-%d","pod-template-hash":"%010x"}},"spec":{"nodeName":"node-%03d","containers":[{"name":"web",`+
		`"image":"registry.example.com/web:1.%d","resources":{"requests":{"cpu":"100m","memory":"128Mi"}}}]},`+
		`"status":{"phase":"Running","podIP":"10.%d.%d.%d","containerStatuses":[{"containerID":"containerd://%016x%016x"}]},`+
		`"annotations":{"note":"`,
		i, i%1000, rng.Uint32(), rng.Uint32()&0xffff, rng.Uint32()&0xffff, rng.Uint32()&0xffff, rng.Uint64()&0xffffffffffff,
		rev, 1+i%28, i%24, i%60, (i/60)%60, i%50, rng.Uint64()&0xffffffffff, i%200, i%7,
		i%256, (i/256)%256, rng.IntN(256), rng.Uint64(), rng.Uint64())
	const pad = "managed by the deployment controller; "
	for len(dst)-start < size-3 {
		dst = append(dst, pad[(len(dst)-start)%len(pad)])
	}
	return append(dst, `"}}`...)
}
