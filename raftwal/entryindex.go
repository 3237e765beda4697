package raftwal

import "google.golang.org/protobuf/encoding/protowire"

// entryIndexField is raftpb.Entry's Index: field 3, a varint.
const entryIndexField = 3

// entryIndex reads the index of an encoded raftpb.Entry without decoding
// the rest: the scan at Open needs only where each entry is, and decoding
// them whole copied every entry's data once more than the entries
// ReadEntries reads back afterwards (a transient copy of the whole log at
// start). As proto's decoding: the last Index field read counts, a field
// 3 of another wire type is an unknown field, and a record that does not
// parse is an error. The entry is decoded whole when it is read.
func entryIndex(b []byte) (uint64, error) {
	var index uint64
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return 0, protowire.ParseError(n)
		}
		b = b[n:]
		if num == entryIndexField && typ == protowire.VarintType {
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return 0, protowire.ParseError(n)
			}
			index, b = v, b[n:]
			continue
		}
		n = protowire.ConsumeFieldValue(num, typ, b)
		if n < 0 {
			return 0, protowire.ParseError(n)
		}
		b = b[n:]
	}
	return index, nil
}
