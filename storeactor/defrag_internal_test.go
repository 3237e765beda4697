package storeactor

import (
	"context"
	"crypto/rand"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"go.uber.org/zap"
	zapobserver "go.uber.org/zap/zaptest/observer"

	"github.com/metastore/metastore/testkit"
)

// Changing --defrag-rate-bytes while running: a defragmentation under way
// takes the new pace at once (here, from 1 MiB/s to unpaced after its
// first wait), later ones start with it, the gauge reads it back, and a
// negative rate is refused with nothing changed.
func TestDefragRateChangeRetunesARunningDefrag(t *testing.T) {
	// A pacer on a fake clock that only its sleeps move, after each of
	// which clients seem to have synced the WAL: every compaction write
	// is paced.
	var mu sync.Mutex
	now := time.Unix(1000, 0)
	var sleeps []time.Duration
	p := &CompactionPacer{now: func() time.Time { mu.Lock(); defer mu.Unlock(); return now }}
	core, logs := zapobserver.New(zap.InfoLevel)
	d := &Defragmenter{Pacer: p, Rate: 1 << 20, Logger: zap.New(core)}
	p.sleep = func(s time.Duration) {
		mu.Lock()
		sleeps = append(sleeps, s)
		now = now.Add(s)
		first := len(sleeps) == 1
		mu.Unlock()
		p.walSynced()
		if first {
			if err := d.SetRate(&SetDefragRate{Bytes: 0}); err != nil {
				t.Error(err)
			}
		}
	}
	db, err := OpenPebbleFS(p.FS(vfs.NewMem()), "/db")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	d.DB = db
	value := make([]byte, 64<<10)
	for i := range 64 { // 4 MiB that does not compress: 4 s at 1 MiB/s
		rand.Read(value)
		if err := db.Set(fmt.Appendf(nil, "k%03d", i), value, pebble.NoSync); err != nil {
			t.Fatal(err)
		}
	}
	p.walSynced()

	if err := d.Defragment(context.Background()); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	got := slices.Clone(sleeps)
	mu.Unlock()
	if len(got) != 1 {
		t.Fatalf("the defragmentation waited %d times; want once, before its pace changed to unpaced", len(got))
	}

	if err := d.SetRate(&SetDefragRate{Bytes: -1}); err == nil {
		t.Fatal("a negative rate was accepted")
	}
	if err := d.SetRate(&SetDefragRate{Bytes: 12 << 20}); err != nil {
		t.Fatal(err)
	}
	if p.rate != 0 {
		t.Fatalf("with no defragmentation running the pacer paces at %v", p.rate)
	}
	if r := testkit.Gather(t, testkit.Registry(t, d)).Must(t, "metastore_defrag_rate_bytes"); r != 12<<20 {
		t.Errorf("metastore_defrag_rate_bytes = %v, want 12 MiB", r)
	}
	want := []string{"defrag-rate-bytes: 1048576 -> 0", "defrag-rate-bytes: 0 -> 12582912"}
	if got := testkit.SettingChanges(logs); !slices.Equal(got, want) {
		t.Errorf("logged %q, want %q", got, want)
	}
}
