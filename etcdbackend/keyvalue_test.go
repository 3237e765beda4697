package etcdbackend

import (
	"testing"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"google.golang.org/protobuf/proto"
)

// decodeKeyValue reads what proto.Unmarshal reads (unknown fields
// skipped), on every field and on damaged input.
func FuzzDecodeKeyValue(f *testing.F) {
	for _, kv := range []*mvccpb.KeyValue{
		{Key: []byte("k")},
		{Key: []byte("key"), CreateRevision: 2, ModRevision: 9, Version: 3, Value: []byte("value"), Lease: -5},
		{Key: []byte{0, 1}, Value: make([]byte, 300), Lease: 1 << 62},
	} {
		b, err := proto.Marshal(kv)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
		f.Add(append(b, 0x38, 0x01)) // an unknown field 7
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		want := new(mvccpb.KeyValue)
		wantErr := proto.Unmarshal(b, want)
		got := &mvccpb.KeyValue{Key: []byte("stale"), Lease: 9}
		err := decodeKeyValue(b, got)
		if (err != nil) != (wantErr != nil) {
			t.Fatalf("decode error %v, proto.Unmarshal's %v", err, wantErr)
		}
		want.ProtoReflect().SetUnknown(nil) // skipped, not kept
		if err == nil && !proto.Equal(got, want) {
			t.Fatalf("decoded %v, proto.Unmarshal %v", got, want)
		}
	})
}
