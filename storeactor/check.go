package storeactor

import (
	"bytes"
	"encoding/binary"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
)

// CheckConsistency is the single-member half of etcd's initial corruption
// check (--feature-gates=InitialCorruptCheck=true): etcd compares its
// HashKV with its peers'; alone, a member checks what it can on its own,
// at one point in time:
//
//   - every newest-version ('l') entry describes the newest version in 'k'
//     of its key (same main revision, create revision, version, lease and
//     tombstone flag), and every key with versions has an 'l' entry;
//   - the count index ('i') is the one the live keys define (counts.go),
//     if there is one of the current format (else the Store builds it
//     when it starts, after this check);
//   - HashKV at the current revision can be computed (every version
//     decodes).
//
// It reads everything once; it is meant for start-up.
func (r *Reader) CheckConsistency() error {
	snap := r.db.NewSnapshot()
	defer snap.Close()
	latest, err := snap.NewIter(&pebble.IterOptions{LowerBound: []byte{prefixLatest}, UpperBound: latestSpaceUpper})
	if err != nil {
		return err
	}
	defer latest.Close()
	versions, err := snap.NewIter(&pebble.IterOptions{LowerBound: []byte{prefixKey}, UpperBound: []byte{prefixKey + 1}})
	if err != nil {
		return err
	}
	defer versions.Close()

	// Walk both spaces in key order: each key's first (newest) 'k' entry
	// must match its 'l' entry.
	vok := versions.First()
	for lok := latest.First(); lok; lok = latest.Next() {
		enc := latest.Key()[1:]
		v := latest.Value()
		if len(v) < 9 {
			return fmt.Errorf("newest version of %q: %w", decodeUserKey(enc), errCorruptRecord)
		}
		main, lrec := int64(binary.BigEndian.Uint64(v[:8])), v[8:]
		l, err := decodeRecord(lrec)
		if err != nil {
			return fmt.Errorf("newest version of %q: %w", decodeUserKey(enc), err)
		}
		prefix := append([]byte{prefixKey}, enc...)
		if vok && bytes.Compare(versions.Key(), prefix) < 0 {
			p, _ := splitVersionKey(versions.Key())
			return fmt.Errorf("key %q has versions but no newest-version entry", decodeUserKey(p[1:]))
		}
		if !vok || !bytes.HasPrefix(versions.Key(), prefix) {
			return fmt.Errorf("newest version of %q (revision %d) has no version entry", decodeUserKey(enc), main)
		}
		p, kmain := splitVersionKey(versions.Key())
		if !bytes.Equal(p, prefix) || kmain != main {
			return fmt.Errorf("newest version of %q is revision %d, its newest version entry %d", decodeUserKey(enc), main, kmain)
		}
		k, err := decodeRecord(versions.Value())
		if err != nil {
			return fmt.Errorf("version %d of %q: %w", kmain, decodeUserKey(enc), err)
		}
		if k.tombstone != l.tombstone || k.create != l.create || k.version != l.version || k.lease != l.lease || k.sub != l.sub {
			return fmt.Errorf("newest version of %q (revision %d) disagrees with its version entry", decodeUserKey(enc), main)
		}
		// Skip the key's older versions.
		vok = versions.SeekGE(afterKeyPrefix(nil, prefix))
	}
	if vok {
		p, _ := splitVersionKey(versions.Key())
		return fmt.Errorf("key %q has versions but no newest-version entry", decodeUserKey(p[1:]))
	}
	if err := latest.Error(); err != nil {
		return err
	}
	if err := versions.Error(); err != nil {
		return err
	}
	if indexed, err := countIndexCurrent(snap); err != nil {
		return err
	} else if indexed {
		if err := checkCountIndex(snap); err != nil {
			return err
		}
	}
	_, err = r.HashKV(0)
	return err
}
