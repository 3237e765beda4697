package etcdbackend

import (
	"encoding/binary"
	"fmt"
)

// A key-bucket key is main(8) '_' sub(8), plus 't' for a tombstone.
const (
	revKeyLen    = 17
	markedKeyLen = revKeyLen + 1
	markTomb     = 't'
)

// appendRevKey appends the key-bucket key of revision main.sub.
func appendRevKey(dst []byte, main, sub int64, tombstone bool) []byte {
	dst = binary.BigEndian.AppendUint64(dst, uint64(main))
	dst = append(dst, '_')
	dst = binary.BigEndian.AppendUint64(dst, uint64(sub))
	if tombstone {
		dst = append(dst, markTomb)
	}
	return dst
}

// parseRevKey splits a key-bucket key. etcd panics on a malformed one; a
// damaged file is an error here.
func parseRevKey(b []byte) (main, sub int64, tombstone bool, err error) {
	if (len(b) != revKeyLen && len(b) != markedKeyLen) || b[8] != '_' {
		return 0, 0, false, fmt.Errorf("%w: bad revision key %x", ErrCorrupt, b)
	}
	main, sub = int64(binary.BigEndian.Uint64(b[:8])), int64(binary.BigEndian.Uint64(b[9:17]))
	if main < 0 || sub < 0 {
		return 0, 0, false, fmt.Errorf("%w: negative revision in key %x", ErrCorrupt, b)
	}
	return main, sub, len(b) == markedKeyLen && b[revKeyLen] == markTomb, nil
}
