package leaseactor_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"

	"github.com/metastore/metastore/storeactor"
	"github.com/metastore/metastore/testkit"
)

// faultyHarness is a harness whose DB fails every read of an sstable
// while the toggle is on.
func faultyHarness(t *testing.T) (*harness, *errorfs.Toggle) {
	t.Helper()
	faults := testkit.TableReadFaults()
	db, err := storeactor.OpenPebbleFS(errorfs.Wrap(vfs.NewMem(), faults), "/db", storeactor.WithoutBlockCache())
	if err != nil {
		t.Fatal(err)
	}
	return newHarnessOn(t, db, nil), faults
}

func (h *harness) flush() {
	h.t.Helper()
	if err := h.db.Flush(); err != nil {
		h.t.Fatal(err)
	}
}

func loadFailures(t *testing.T) float64 {
	return testkit.Gather(t, testkit.Registry(t)).Must(t, "metastore_lease_load_failures_total")
}

// A Lessor that cannot read the leases when it starts (a disk read error)
// does not panic: it counts the failure, is not primary meanwhile — it
// expires nothing it does not know of, and keep-alives go to "not
// leader" — and reads them again at its next check, then serves.
func TestLessorRetriesLoadingLeases(t *testing.T) {
	h, faults := faultyHarness(t)
	h.grant(1, 10)
	h.flush()
	h.kit.Stop(h.lessor)
	before := loadFailures(t)

	faults.On()
	h.startLessor()
	if r := h.renew(1); !errors.Is(r.Err, rpctypes.ErrGRPCNotLeader) {
		t.Fatalf("renew before the leases are read: %+v", r)
	}
	h.advance(500 * time.Millisecond) // a check: the read fails again
	if n := loadFailures(t) - before; n != 2 {
		t.Fatalf("metastore_lease_load_failures_total grew by %v, want 2 (start, then a check)", n)
	}
	faults.Off()

	h.advance(500 * time.Millisecond) // the next check reads them
	if r := h.renew(1); r.Err != nil || r.TTL != 10 {
		t.Fatalf("renew once the leases are read: %+v", r)
	}
	h.advance(10500 * time.Millisecond)
	if ids := h.revokes(); fmt.Sprint(ids) != "[1]" {
		t.Fatalf("revokes = %v, want [1]", ids)
	}
}

// A lease the Lessor has to look up in pebble (a grant it was not told
// of) that cannot be read fails that keep-alive or TTL query with the
// error, and the Lessor serves on: the same lease renews once the disk
// reads again. An expired lease whose record cannot be read is revoked
// all the same.
func TestLessorLookupReadErrors(t *testing.T) {
	h, faults := faultyHarness(t)
	h.grant(1, 10)
	h.kit.Stop(h.store) // the Lessor is not told of the next grant
	h.store = h.kit.Spawn(storeactor.New(storeactor.Config{DB: h.db, MinLeaseTTL: 2}, h.reader))
	h.grant(5, 20)
	h.flush()

	faults.On()
	if r := h.renew(5); !errors.Is(r.Err, errorfs.ErrInjected) {
		t.Fatalf("renew of a lease pebble cannot read: %+v", r)
	}
	if r := h.ttl(5); !errors.Is(r.Err, errorfs.ErrInjected) || r.Found {
		t.Fatalf("ttl of a lease pebble cannot read: %+v", r)
	}
	h.advance(10500 * time.Millisecond) // lease 1 expires; its record cannot be read
	if ids := h.revokes(); fmt.Sprint(ids) != "[1]" {
		t.Fatalf("revokes while the disk fails = %v, want [1]", ids)
	}
	faults.Off()

	if r := h.renew(5); r.Err != nil || r.TTL != 20 {
		t.Fatalf("renew once the disk reads: %+v", r)
	}
}
