package storeactor

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/objstorage/objstorageprovider"
	"github.com/cockroachdb/pebble/v2/sstable"
	"github.com/cockroachdb/pebble/v2/vfs"
	"go.uber.org/zap"
)

// A follower too far behind the leader's log (or a new member) gets the
// leader's state instead: a pebble checkpoint of the leader's DB, sent as
// the archive Snapshot.WriteTo writes (without checksum: the transport is
// the integrity boundary) and unpacked here by ReceiveCheckpoint. The store
// then replaces its whole key space with the checkpoint's in one atomic
// step — one ingested sstable holding range deletions over the store's key
// space and every store key of the checkpoint (an ingested table's range
// deletions shadow older data, not its own points) — and reloads.
//
// The checkpoint's store has applied some index A at least the raft
// snapshot's index S; raft hands on the entries after S and the store skips
// those up to A, as after a restart.
//
// Not copied: the raft key space ('r', the raft actor's own) and the node's
// identity ('n').

// InstallSnapshot asks the store to replace its state with the store key
// space of the checkpoint in Dir (on FS). Reply gets nil once it is
// installed and published, or why not (nothing changed then). Dir is
// removed either way.
type InstallSnapshot struct {
	FS    vfs.FS
	Dir   string
	Reply chan<- error
}

// afterIngest, when set (tests), runs between a snapshot's ingest and the
// publishing of its View.
var afterIngest func()

// storeSpans are the key ranges the store owns in the shared DB.
var storeSpans = [][2][]byte{{{0x00}, {'n'}}, {{'n' + 1}, {'r'}}, {{'r' + 1}, {0xff, 0xff}}}

func inStoreSpace(key []byte) bool { return len(key) > 0 && key[0] != 'n' && key[0] != 'r' }

func (s *Store) installSnapshot(ctx actor.Context, m *InstallSnapshot) {
	if m.Reply != nil {
		// The raft actor waits on Reply and hands the store nothing else
		// meanwhile: a panic here (the actor is then restarted) is an error
		// to it now, not silence until its installTimeout.
		defer func() {
			if p := recover(); p != nil {
				m.Reply <- fmt.Errorf("storeactor: install snapshot: panic: %v", p)
				panic(p)
			}
		}()
	}
	sst := m.FS.PathJoin(m.FS.PathDir(m.Dir), m.FS.PathBase(m.Dir)+".sst")
	err := s.writeCheckpointTable(m.FS, m.Dir, sst)
	// Whatever the outcome, the checkpoint (a full copy of the leader's DB)
	// is done with once read: the raft actor hands a failed install's
	// snapshot to nobody, and the leader sends a new one.
	if rerr := m.FS.RemoveAll(m.Dir); rerr != nil {
		s.cfg.Logger.Warn("failed to remove received snapshot", zap.String("path", m.Dir), zap.Error(rerr))
	}
	if err == nil {
		// Reads wait from here until start publishes the new View
		// (viewRef), which it also does when a panic restarts the actor
		// first.
		s.view.installBegin()
		if err = s.cfg.DB.Ingest(context.Background(), []string{sst}); err != nil {
			s.view.installEnd() // nothing changed
		}
	}
	_ = m.FS.Remove(sst)
	if err != nil {
		if m.Reply != nil {
			m.Reply <- err
		}
		return
	}
	if afterIngest != nil {
		afterIngest()
	}
	before := s.cur.Rev
	s.start(ctx)
	s.cfg.Logger.Info("installed snapshot from leader", zap.Uint64("applied-index", s.cur.Applied), zap.Int64("revision", s.cur.Rev))
	if s.cfg.Watch != nil && s.cur.Rev > before {
		// Watchers catch up from the new history (the hub sees a gap).
		ctx.Send(s.cfg.Watch, &Committed{From: s.cur.Rev + 1, Rev: s.cur.Rev})
	}
	if s.cfg.Leases != nil {
		ctx.Send(s.cfg.Leases, &LeasesApplied{Granted: mustRead(listLeases(s.cfg.DB)), Reset: true})
	}
	if m.Reply != nil {
		m.Reply <- nil
	}
}

// writeCheckpointTable writes the store key space of the checkpoint at dir
// into one sstable at sst, with range deletions over the store's spans:
// the table installSnapshot ingests.
func (s *Store) writeCheckpointTable(fs vfs.FS, dir, sst string) error {
	opts := PebbleOptions()
	opts.FS = fs
	opts.ReadOnly = true
	src, err := pebble.Open(dir, opts)
	if err != nil {
		return fmt.Errorf("storeactor: open received checkpoint: %w", err)
	}
	defer src.Close()
	f, err := fs.Create(sst, vfs.WriteCategoryUnspecified)
	if err != nil {
		return err
	}
	w := sstable.NewWriter(objstorageprovider.NewFileWritable(f), sstable.WriterOptions{
		TableFormat: s.cfg.DB.FormatMajorVersion().MaxTableFormat(),
	})
	for _, sp := range storeSpans {
		if err := w.DeleteRange(sp[0], sp[1]); err != nil {
			w.Close()
			return err
		}
	}
	it, err := src.NewIter(nil)
	if err != nil {
		w.Close()
		return err
	}
	for ok := it.First(); ok; ok = it.Next() {
		if !inStoreSpace(it.Key()) {
			continue
		}
		if err := w.Set(it.Key(), it.Value()); err != nil {
			it.Close()
			w.Close()
			return err
		}
	}
	if err := errors.Join(it.Error(), it.Close()); err != nil {
		w.Close()
		return err
	}
	return w.Close()
}

// ReceiveCheckpoint unpacks an archive written by Snapshot.WriteTo into
// dir (created if missing, on fs): the checkpoint InstallSnapshot takes,
// or the DB `metastoreutl snapshot restore` starts from. Only "db/<file>"
// regular files are accepted, each once (another folder, a link, a sparse
// file, a path that climbs out is refused: a snapshot holds a flat
// checkpoint and nothing more), so the files written never hold more than
// the archive; the files and the folder are synced.
func ReceiveCheckpoint(fs vfs.FS, dir string, r io.Reader) (err error) {
	start := time.Now()
	var synced time.Duration // in the syncs of the files and the folder
	defer func() {
		if err == nil {
			snapDBFsyncSec.Observe(synced.Seconds())
			snapDBSaveSec.Observe(time.Since(start).Seconds())
		}
	}()
	if err := fs.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	tr := tar.NewReader(r)
	files := 0
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		name := path.Clean(hdr.Name)
		if path.Dir(name) != SnapshotDir || hdr.Typeflag != tar.TypeReg || strings.Contains(path.Base(name), "..") || isSparse(hdr) {
			return fmt.Errorf("unexpected entry %q", hdr.Name)
		}
		file := fs.PathJoin(dir, path.Base(name))
		if _, err := fs.Stat(file); err == nil {
			return fmt.Errorf("duplicate entry %q", hdr.Name)
		}
		out, err := fs.Create(file, vfs.WriteCategoryUnspecified)
		if err != nil {
			return err
		}
		n, err := io.Copy(out, tr)
		if err == nil && n != hdr.Size {
			err = io.ErrUnexpectedEOF
		}
		if err == nil {
			s := time.Now()
			err = out.Sync()
			synced += time.Since(s)
		}
		if cerr := out.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
		files++
	}
	if files == 0 {
		return errors.New("no database files")
	}
	d, err := fs.OpenDir(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	s := time.Now()
	err = d.Sync()
	synced += time.Since(s)
	return err
}

// isSparse reports whether hdr is a GNU sparse file in PAX form: a regular
// file whose holes archive/tar fills with zeros, so that a few bytes of
// archive can claim a terabyte. Snapshot.WriteTo never writes one.
func isSparse(hdr *tar.Header) bool {
	for k := range hdr.PAXRecords {
		if strings.HasPrefix(k, "GNU.sparse.") {
			return true
		}
	}
	return false
}
