package faults

import (
	"context"
	"fmt"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/grpc"

	"github.com/metastore/metastore/node"
)

// lone is a one-member cluster on a crashable disk whose operations can
// be made to fail.
type lone struct {
	cfg       node.Config
	disk      *disk
	faults    faultSwitch
	n         *node.Node
	conn      *grpc.ClientConn
	compacted int64 // the last revision compacted
}

func startLone(t *testing.T, p *power) *lone {
	l := &lone{cfg: loneConfig(t, "lone"), disk: newDisk(p, vfs.NewCrashableMem())}
	n, err := startOn(l.cfg, errorfs.Wrap(l.disk.FS(), &l.faults))
	if err != nil {
		t.Fatal(err)
	}
	l.n = n
	t.Cleanup(n.Stop)
	l.conn = dial(t, n.ClientAddrs()[0])
	t.Cleanup(func() { l.conn.Close() })
	return l
}

// restartSynced starts a member on what l's disk has synced — as a power
// loss with the member stopped leaves it, on a disk that no longer fails
// — and checks it (checkClone).
func (l *lone) restartSynced(t *testing.T, r *run, m *model) {
	r.report("restarted on the synced disk", l.checkClone(t, r, l.disk.mem.CrashClone(vfs.CrashCloneCfg{}), m, allAcks, nil))
}

// checkClone checks what a crashed disk holds at rest, starts a member
// with l's configuration on it and, once the member has applied what its
// log committed, checks it against the model (cut: the acknowledgements
// that must have survived) and with more, if set; then stops it.
func (l *lone) checkClone(t *testing.T, r *run, clone *vfs.MemFS, m *model, cut int64,
	more func(ctx context.Context, st memberState, mc pb.MaintenanceClient) []string) []string {
	rest, err := readRest(clone, l.cfg.DataDir)
	if err != nil {
		return []string{err.Error()}
	}
	bad := rest.check(false)
	n, err := startOn(l.cfg, clone)
	if err != nil {
		return append(bad, fmt.Sprintf("start on the crashed disk (%v): %v", rest, err))
	}
	defer n.Stop()
	conn := dial(t, n.ClientAddrs()[0])
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), startWithin)
	defer cancel()
	if _, err := waitApplied(ctx, conn, rest.commit); err != nil {
		return append(bad, err.Error())
	}
	st, violations := checkMember(ctx, r, conn, m, cut)
	bad = append(bad, violations...)
	if more != nil && st.rev > 0 {
		bad = append(bad, more(ctx, st, pb.NewMaintenanceClient(conn))...)
	}
	return bad
}
