package etcdbackend

import (
	"fmt"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"google.golang.org/protobuf/encoding/protowire"
)

// decodeKeyValue decodes an mvccpb.KeyValue into kv with its key and value
// aliasing b: a backend holds millions of them, and proto.Unmarshal's two
// allocations and copies per version were a third of a migration's CPU.
// Unknown fields are skipped, as proto.Unmarshal skips them.
func decodeKeyValue(b []byte, kv *mvccpb.KeyValue) error {
	kv.Key, kv.Value = nil, nil
	kv.CreateRevision, kv.ModRevision, kv.Version, kv.Lease = 0, 0, 0, 0
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return protowire.ParseError(n)
		}
		if num > protowire.MaxValidNumber {
			return fmt.Errorf("invalid field number %d", num)
		}
		b = b[n:]
		var field *int64
		switch {
		case num == 1 && typ == protowire.BytesType:
			kv.Key, n = protowire.ConsumeBytes(b)
		case num == 5 && typ == protowire.BytesType:
			kv.Value, n = protowire.ConsumeBytes(b)
		case num == 2 && typ == protowire.VarintType:
			field = &kv.CreateRevision
		case num == 3 && typ == protowire.VarintType:
			field = &kv.ModRevision
		case num == 4 && typ == protowire.VarintType:
			field = &kv.Version
		case num == 6 && typ == protowire.VarintType:
			field = &kv.Lease
		default:
			n = protowire.ConsumeFieldValue(num, typ, b)
		}
		if field != nil {
			var v uint64
			v, n = protowire.ConsumeVarint(b)
			*field = int64(v)
		}
		if n < 0 {
			return fmt.Errorf("field %d: %w", num, protowire.ParseError(n))
		}
		b = b[n:]
	}
	return nil
}
