package raftwal

import (
	"math/rand/v2"
	"testing"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// entryIndex reads the index proto.Unmarshal reads, from entries of every
// shape (unset fields, large data, unknown fields, an index repeated), and
// fails where proto.Unmarshal fails (a record cut short).
func TestEntryIndexIsUnmarshals(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for i := range 5000 {
		e := &raftpb.Entry{Term: proto.Uint64(r.Uint64N(1 << (r.IntN(63) + 1))), Index: proto.Uint64(r.Uint64N(1 << (r.IntN(63) + 1))),
			Type: raftpb.EntryType(r.IntN(3)).Enum(), Data: make([]byte, r.IntN(1<<(r.IntN(16)+1)))}
		if i%5 == 0 {
			e.Index = nil // unset: index 0
		}
		b, err := proto.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		if i%7 == 0 { // an unknown field, then the index again
			b = protowire.AppendTag(b, 9, protowire.BytesType)
			b = protowire.AppendBytes(b, []byte("unknown"))
			b = protowire.AppendTag(b, entryIndexField, protowire.VarintType)
			b = protowire.AppendVarint(b, uint64(i))
		}
		var want raftpb.Entry
		if err := proto.Unmarshal(b, &want); err != nil {
			t.Fatal(err)
		}
		got, err := entryIndex(b)
		if err != nil || got != want.GetIndex() {
			t.Fatalf("entry %d: index %d, %v; proto.Unmarshal reads %d", i, got, err, want.GetIndex())
		}
		if cut := r.IntN(len(b) + 1); cut < len(b) {
			// A prefix cut inside a field fails both ways; one cut between
			// fields parses in both, to the index read so far.
			var w raftpb.Entry
			werr := proto.Unmarshal(b[:cut], &w)
			got, err := entryIndex(b[:cut])
			if (werr == nil) != (err == nil) || (err == nil && got != w.GetIndex()) {
				t.Fatalf("entry %d cut at %d of %d: index %d, %v; proto.Unmarshal %d, %v", i, cut, len(b), got, err, w.GetIndex(), werr)
			}
		}
	}
	// A field 3 of another wire type is an unknown field to proto, not
	// the index.
	odd := protowire.AppendTag(nil, entryIndexField, protowire.VarintType)
	odd = protowire.AppendVarint(odd, 7)
	odd = protowire.AppendTag(odd, entryIndexField, protowire.BytesType)
	odd = protowire.AppendBytes(odd, []byte{1})
	var want raftpb.Entry
	if err := proto.Unmarshal(odd, &want); err != nil {
		t.Fatal(err)
	}
	if got, err := entryIndex(odd); err != nil || got != want.GetIndex() || got != 7 {
		t.Fatalf("an index followed by a field 3 of bytes: %d, %v; proto.Unmarshal reads %d", got, err, want.GetIndex())
	}
}
