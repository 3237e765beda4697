package storeactor

import (
	"bytes"

	"github.com/cockroachdb/pebble/v2"
)

// valueReader loads the values of a range read's keys from their 'k'
// entries with one iterator, sought forward key after key, instead of a
// point lookup each: the versions of keys next to each other in the range
// sit next to each other in 'k', so a seek mostly stays in the data block
// the last one decoded, where each point lookup finds its block again
// (and decompresses it when the block cache does not hold it). A
// Kubernetes list page (500 keys) spent most of its time there.
type valueReader struct {
	r   pebble.Reader
	it  *pebble.Iterator
	key []byte
}

// load returns a copy of the value of key's version at main; like
// loadValue, errVersionGone when that version is not there.
func (v *valueReader) load(key []byte, main int64) ([]byte, error) {
	if v.it == nil {
		it, err := v.r.NewIter(&pebble.IterOptions{LowerBound: []byte{prefixKey}, UpperBound: []byte{prefixKey + 1}})
		if err != nil {
			return nil, err
		}
		v.it = it
	}
	v.key = versionKey(v.key[:0], key, main)
	if !v.it.SeekGE(v.key) || !bytes.Equal(v.it.Key(), v.key) {
		if err := v.it.Error(); err != nil {
			return nil, err
		}
		return nil, errVersionGone
	}
	rec, err := decodeRecord(v.it.Value())
	if err != nil {
		return nil, err
	}
	return append([]byte(nil), rec.value...), nil
}

func (v *valueReader) close() {
	if v.it != nil {
		v.it.Close()
	}
}
