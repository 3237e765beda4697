package storeactor

import (
	"encoding/binary"
	"slices"
)

// The store's part of the pebble key space. The same DB holds the raft
// actor's truncation point (prefix 'r', owned by raftactor), whose synced
// write at each log truncation also makes every earlier, unsynced apply
// batch durable: pebble has one WAL and a sync covers everything written
// before it. (The log's entries are in the raft log's own WAL, raftwal.)
//
//	'k' enc(key) ^main(8)       -> record (one version of a key)
//	'l' enc(key)                -> main(8) + record without value: the key's newest version
//	'h' main(8) sub(8)          -> history entry: flag + user key (+ record, see flagShadowed)
//	'm' name                    -> store metadata (revision, applied index, compaction)
//	'e' id(8)                   -> lease: granted TTL(8)
//	'a' id(8) enc(key)          -> (empty) key is attached to lease id
//	'u' name                    -> authpb.User
//	'o' name                    -> authpb.Role
//	'x' type(4) member(8)       -> (empty) an active alarm
//	'i' L enc(key)              -> (empty) key separates level L of the count index
//	'i' 0x80|L enc(key)         -> its count (see counts.go)
//
// 'l' repeats each key's newest version, without its value, so that the
// common reads (at or near the current revision) walk one small entry per
// key — a count or a keys-only read never touches a value — and a put
// finds the version it replaces with a point lookup. A read that returns
// values gets each from its 'k' entry (main is known: a point lookup). A
// read at revision R uses the 'l' entry when its main <= R, and looks in
// 'k' otherwise. 'l' entries are written with every version and removed
// only by compaction, together with a tombstone they hold.
//
// Versions of one key sort newest first (the main revision is stored
// inverted), so the version visible at revision R is the first entry at or
// after 'k' enc(key) ^R. 'k' holds one version of a key per main revision,
// the last: the sub revision lives in the record. The one txn that
// changes a key twice in a revision (nested txns putting it, then
// deleting it) leaves the put's record in its history entry
// (flagShadowed), where watches and exports find it.
const (
	prefixKey     = 'k'
	prefixLatest  = 'l'
	prefixHistory = 'h'
	prefixMeta    = 'm'
	prefixLease   = 'e'
	prefixAttach  = 'a'
	prefixUser    = 'u'
	prefixRole    = 'o'
	prefixAlarm   = 'x'
	prefixCount   = 'i'
)

var (
	metaRev          = []byte("mrev")          // current main revision
	metaApplied      = []byte("mapplied")      // last applied raft index (8) + term (8)
	metaCompact      = []byte("mcompact")      // compaction revision clients see (scheduled)
	metaCompactDone  = []byte("mcompact_done") // revision physical compaction finished at
	metaLive         = []byte("mlive")         // live bytes (see View.LiveBytes)
	latestSpaceUpper = []byte{prefixLatest + 1}
	historySpaceLow  = []byte{prefixHistory}
	historySpaceHigh = []byte{prefixHistory + 1}
)

// appendEncodedKey appends an order-preserving, prefix-free encoding of a
// user key: 0x00 becomes 0x00 0xFF and the key ends with 0x00 0x01. For user
// keys a < b, enc(a)+anything < enc(b)+anything, so range bounds on encoded
// keys are exact and no key's versions can interleave with another's.
func appendEncodedKey(dst, key []byte) []byte {
	for _, c := range key {
		if c == 0 {
			dst = append(dst, 0, 0xFF)
		} else {
			dst = append(dst, c)
		}
	}
	return append(dst, 0, 1)
}

// decodeUserKey reverses appendEncodedKey on enc (terminator included) and
// returns the user key. It allocates: callers keep the result.
func decodeUserKey(enc []byte) []byte {
	return appendDecodedKey(make([]byte, 0, len(enc)-2), enc)
}

// appendDecodedKey appends the user key enc encodes (terminator included).
func appendDecodedKey(dst, enc []byte) []byte {
	for i := 0; i < len(enc)-2; i++ {
		dst = append(dst, enc[i])
		if enc[i] == 0 {
			i++ // skip the 0xFF escape
		}
	}
	return dst
}

// growForKey makes room in dst for an encoded key of len(key) bytes (no
// zero bytes) plus extra, so that building it allocates at most once.
func growForKey(dst, key []byte, extra int) []byte {
	return slices.Grow(dst, 1+len(key)+2+extra)
}

// versionKey is 'k' enc(key) ^main.
func versionKey(dst, key []byte, main int64) []byte {
	dst = append(growForKey(dst, key, 8), prefixKey)
	dst = appendEncodedKey(dst, key)
	return binary.BigEndian.AppendUint64(dst, ^uint64(main))
}

// keyPrefix is 'k' enc(key): every version of key starts with it.
func keyPrefix(dst, key []byte) []byte {
	dst = append(growForKey(dst, key, 0), prefixKey)
	return appendEncodedKey(dst, key)
}

// latestKey is 'l' enc(key).
func latestKey(dst, key []byte) []byte {
	dst = append(growForKey(dst, key, 0), prefixLatest)
	return appendEncodedKey(dst, key)
}

// splitVersionKey splits a 'k' key into its key prefix ('k' enc(key)) and main revision.
func splitVersionKey(k []byte) (prefix []byte, main int64) {
	n := len(k) - 8
	return k[:n], int64(^binary.BigEndian.Uint64(k[n:]))
}

// afterKeyPrefix returns a key greater than every version of the key whose
// prefix is p and smaller than any later key: p + 9 x 0xFF.
func afterKeyPrefix(dst, p []byte) []byte {
	dst = append(dst, p...)
	return append(dst, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF)
}

// historyKey is 'h' main sub.
func historyKey(dst []byte, main, sub int64) []byte {
	dst = append(dst, prefixHistory)
	dst = binary.BigEndian.AppendUint64(dst, uint64(main))
	return binary.BigEndian.AppendUint64(dst, uint64(sub))
}

// A history entry's value is a flag byte and the user key; a shadowed
// version's (flagShadowed) is the flag, the key's length, the key and the
// version's record. A version is shadowed when a later change of its key
// in the same revision replaced it in 'k' — a txn whose nested txns put a
// key and then delete it (etcd's duplicate-key check lets that one order
// through, and its watchers see both events) — so its history entry is
// all that is left of it.
const flagShadowed = 4

// appendHistoryValue appends the history value of a change of key
// (tombstone: a deletion).
func appendHistoryValue(dst []byte, key []byte, tombstone bool) []byte {
	flag := byte(0)
	if tombstone {
		flag = flagTombstone
	}
	return append(append(dst, flag), key...)
}

// appendShadowedHistory appends the history value of a shadowed version:
// rec is its encoded record (from its 'k' entry, value included).
func appendShadowedHistory(dst []byte, key []byte, tombstone bool, rec []byte) []byte {
	flag := byte(flagShadowed)
	if tombstone {
		flag |= flagTombstone
	}
	dst = binary.AppendUvarint(append(dst, flag), uint64(len(key)))
	return append(append(dst, key...), rec...)
}

// parseHistoryValue splits a history value into its flag, user key and,
// for a shadowed version, its encoded record (nil otherwise). The results
// alias v.
func parseHistoryValue(v []byte) (flag byte, key, rec []byte, err error) {
	if len(v) < 1 {
		return 0, nil, nil, errCorruptRecord
	}
	flag = v[0]
	if flag&flagShadowed == 0 {
		return flag, v[1:], nil, nil
	}
	n, w := binary.Uvarint(v[1:])
	if w <= 0 || uint64(len(v)-1-w) < n {
		return 0, nil, nil, errCorruptRecord
	}
	key = v[1+w : 1+w+int(n)]
	return flag, key, v[1+w+int(n):], nil
}

func parseHistoryKey(k []byte) (main, sub int64) {
	return int64(binary.BigEndian.Uint64(k[1:9])), int64(binary.BigEndian.Uint64(k[9:17]))
}
