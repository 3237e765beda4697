// Package raftwal is the raft log's write-ahead log: raft's entries and
// hard states appended to preallocated segment files and made durable by
// one fdatasync of the file being written, on the caller's goroutine.
//
// Why not pebble, where the log was before: a synced pebble commit hands
// the write to pebble's WAL goroutine and waits to be woken, and its WAL
// file grows with each write, so each fdatasync also journals the file's
// new size; and every entry was written again by the memtable's flush
// and compactions until its deletion. Here a synced append is one write
// and one fdatasync into space allocated when the segment was made.
//
// The log is a sequence of segments named by sequence number
// (%016x.wal), each opened by a kindSegment record. Replaying them in
// order rebuilds the log: an entry replaces the one at its index and drops
// every later one, a truncate record drops the entries after its index,
// the last hard state is in force. A segment is written only by the
// process that created it: Open starts a new one, so a torn tail from a
// crash is never written over, and the next segment's header records
// where the torn one's data ended.
//
// Invariants:
//   - every segment but the last ends its data exactly where the next
//     segment's header says (else Open reports corruption);
//   - each segment after the first starts with the hard state in force
//     when it was made, so removing older segments never loses it;
//   - segments are removed oldest first (Release), so a gap in the
//     sequence is a removal a crash interrupted: what precedes it is
//     garbage.
package raftwal

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"go.etcd.io/raft/v3/raftpb"
	"go.uber.org/zap"
	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/proto"

	"github.com/metastore/metastore/durabledir"
)

// DefaultSegmentSize is the size a segment is preallocated to (etcd's WAL
// uses the same).
const DefaultSegmentSize = 64 << 20

// WriteCategory is what the WAL creates its segments with: an FS wrapper
// can tell them by it (the defragmenter's pacer watches their syncs).
const WriteCategory vfs.DiskWriteCategory = "raft-wal"

// Options is where the WAL lives and how big its segments are.
type Options struct {
	FS          vfs.FS
	Dir         string
	SegmentSize int64 // 0: DefaultSegmentSize
	Logger      *zap.Logger
}

// WAL appends raft's log and reads it back. Not safe for concurrent use:
// its owner (the raft actor) is its only user.
type WAL struct {
	opts Options
	segs []segment // oldest first; the last is the one being written
	f    vfs.File  // the last segment
	off  int64     // bytes written to f
	// dataStart is where f's records after its header and hard state
	// start: a segment still at it takes a record of any size.
	dataStart int64
	buf       []byte // records not yet written
	scratch   []byte // add's encoding of a message, copied into buf
	// queued is what buf's records do to idx, w.hs and the segment's
	// maxIndex, applied once they are written (write): a Discard leaves
	// the WAL as the disk has it.
	queued []queuedRecord
	hs     []byte // the last hard state, marshaled; opens each new segment
	idx    index
	// readers are open handles of segments, for ReadEntries.
	readers map[uint64]vfs.File
	err     error // a failed write or sync: the WAL accepts nothing more
	written int64
	// readOnly: OpenForReading's, which removes nothing scan finds left
	// by a crash.
	readOnly bool
}

type segment struct {
	seq      uint64
	end      int64  // where its data ends
	maxIndex uint64 // the greatest entry index written to it (0: none)
}

func segmentName(seq uint64) string { return fmt.Sprintf("%016x.wal", seq) }

func (w *WAL) path(seq uint64) string { return w.opts.FS.PathJoin(w.opts.Dir, segmentName(seq)) }

// Open reads the WAL in opts.Dir (creating the dir if needed) and starts a
// new segment to append to.
func Open(opts Options) (*WAL, error) {
	if opts.SegmentSize <= 0 {
		opts.SegmentSize = DefaultSegmentSize
	}
	if opts.Logger == nil {
		opts.Logger = zap.NewNop()
	}
	w := &WAL{opts: opts, readers: map[uint64]vfs.File{}, idx: index{first: 1}}
	if err := durabledir.Create(opts.FS, opts.Dir); err != nil {
		return nil, fmt.Errorf("raftwal: create %s: %w", opts.Dir, err)
	}
	if err := w.scan(); err != nil {
		return nil, err
	}
	if err := w.roll(); err != nil {
		return nil, err
	}
	return w, nil
}

// OpenForReading reads the WAL in opts.Dir as Open does, without
// changing anything: the WAL returned reads (HardState, Bounds,
// ReadEntries) and refuses appends. Open's owner may be writing the
// segments meanwhile: what it had not written whole is not read.
func OpenForReading(opts Options) (*WAL, error) {
	if opts.Logger == nil {
		opts.Logger = zap.NewNop()
	}
	w := &WAL{opts: opts, readers: map[uint64]vfs.File{}, idx: index{first: 1}, readOnly: true}
	if err := w.scan(); err != nil {
		return nil, err
	}
	w.err = errors.New("raftwal: opened for reading")
	return w, nil
}

// scan replays every segment to learn where each entry is, the last hard
// state and where each segment's data ends; it removes what a crash left
// behind (segments before a gap, a last segment without a header).
func (w *WAL) scan() error {
	names, err := w.opts.FS.List(w.opts.Dir)
	if w.readOnly && errors.Is(err, os.ErrNotExist) {
		return nil // a data dir whose WAL was never made: empty
	}
	if err != nil {
		return fmt.Errorf("raftwal: %w", err)
	}
	var seqs []uint64
	for _, name := range names {
		hex, ok := strings.CutSuffix(name, ".wal")
		if !ok {
			continue
		}
		seq, err := strconv.ParseUint(hex, 16, 64)
		if err != nil || segmentName(seq) != name {
			return fmt.Errorf("raftwal: unexpected file %s in %s", name, w.opts.Dir)
		}
		seqs = append(seqs, seq)
	}
	slices.Sort(seqs)
	// Segments before a gap are those an interrupted Release meant to remove.
	for i := len(seqs) - 1; i > 0; i-- {
		if seqs[i-1]+1 != seqs[i] {
			for _, s := range seqs[:i] {
				if err := w.remove(s); err != nil {
					return fmt.Errorf("raftwal: remove segment left by an interrupted release: %w", err)
				}
			}
			seqs = seqs[i:]
			break
		}
	}
	if len(seqs) > 0 {
		w.idx.base = seqs[0]
	}
	for i, seq := range seqs {
		last := i == len(seqs)-1
		seg, ok, err := w.scanSegment(seq, last)
		if err != nil {
			return err
		}
		if !ok { // the last segment, its creation cut short by a crash
			if err := w.remove(seq); err != nil {
				return fmt.Errorf("raftwal: remove incomplete segment: %w", err)
			}
			break
		}
		if i > 0 && seg.prevEnd != w.segs[i-1].end {
			return fmt.Errorf("raftwal: segment %s: its data ends at offset %d, but segment %s says %d: the WAL is corrupt",
				segmentName(w.segs[i-1].seq), w.segs[i-1].end, segmentName(seq), seg.prevEnd)
		}
		w.segs = append(w.segs, seg.segment)
	}
	return nil
}

// remove removes what scan found a crash left, unless the WAL is only
// being read.
func (w *WAL) remove(seq uint64) error {
	if w.readOnly {
		return nil
	}
	return w.opts.FS.Remove(w.path(seq))
}

type scannedSegment struct {
	segment
	prevEnd int64
}

// scanSegment replays one segment into w.idx and w.hs; ok is false when
// it has no valid header (only acceptable for the last segment).
func (w *WAL) scanSegment(seq uint64, last bool) (scannedSegment, bool, error) {
	s := scannedSegment{segment: segment{seq: seq}}
	f, err := w.opts.FS.Open(w.path(seq))
	if err != nil {
		return s, false, fmt.Errorf("raftwal: %w", err)
	}
	defer f.Close()
	rr := newRecordReader(f)
	k, p, err := rr.next()
	switch {
	case errors.Is(err, errEnd) && last:
		return s, false, nil
	case err != nil:
		return s, false, fmt.Errorf("raftwal: segment %s: %w", segmentName(seq), err)
	case k != kindSegment || len(p) != 16 || binary.LittleEndian.Uint64(p) != seq:
		return s, false, fmt.Errorf("raftwal: segment %s does not start with its header: the WAL is corrupt", segmentName(seq))
	}
	s.prevEnd = int64(binary.LittleEndian.Uint64(p[8:]))
	for {
		at := rr.off
		k, p, err := rr.next()
		if errors.Is(err, errEnd) {
			break
		}
		if err != nil {
			return s, false, fmt.Errorf("raftwal: segment %s: %w", segmentName(seq), err)
		}
		switch k {
		case kindEntry:
			index, err := entryIndex(p)
			if err != nil {
				return s, false, fmt.Errorf("raftwal: segment %s offset %d: entry: %w", segmentName(seq), at, err)
			}
			if err := w.idx.put(index, seq, at); err != nil {
				return s, false, fmt.Errorf("raftwal: segment %s offset %d: %w", segmentName(seq), at, err)
			}
			s.maxIndex = max(s.maxIndex, index)
		case kindHardState:
			w.hs = append(w.hs[:0], p...)
		case kindTruncate:
			if len(p) != 8 {
				return s, false, fmt.Errorf("raftwal: segment %s offset %d: bad truncate record", segmentName(seq), at)
			}
			w.idx.truncate(binary.LittleEndian.Uint64(p))
		default:
			return s, false, fmt.Errorf("raftwal: segment %s offset %d: unknown record kind %d", segmentName(seq), at, k)
		}
	}
	s.end = rr.off
	return s, true, nil
}

// roll makes the segment after the last one, preallocated, and makes it
// the one written: the previous one's data is synced first (the new
// header vouches for where it ends), and the new one is durable, with its
// directory entry, before anything is appended to it.
func (w *WAL) roll() error {
	fs := w.opts.FS
	start := time.Now()
	seq, prevEnd := uint64(1), int64(0)
	if n := len(w.segs); n > 0 {
		seq, prevEnd = w.segs[n-1].seq+1, w.segs[n-1].end
	}
	if w.f != nil {
		if err := w.f.SyncData(); err != nil {
			return err
		}
		if err := w.f.Close(); err != nil {
			return err
		}
		w.f = nil
	}
	f, err := fs.Create(w.path(seq), WriteCategory)
	if err != nil {
		return err
	}
	if err := preallocate(f, w.opts.SegmentSize); err != nil {
		return errors.Join(err, f.Close())
	}
	hdr := binary.LittleEndian.AppendUint64(nil, seq)
	hdr = binary.LittleEndian.AppendUint64(hdr, uint64(prevEnd))
	b := appendRecord(nil, kindSegment, hdr)
	if len(w.hs) > 0 {
		b = appendRecord(b, kindHardState, w.hs)
	}
	if _, err := f.Write(b); err != nil {
		return errors.Join(err, f.Close())
	}
	if err := f.Sync(); err != nil {
		return errors.Join(err, f.Close())
	}
	if err := durabledir.Sync(fs, w.opts.Dir); err != nil {
		return errors.Join(err, f.Close())
	}
	if len(w.segs) == 0 {
		w.idx.base = seq
	}
	w.f, w.off, w.dataStart = f, int64(len(b)), int64(len(b))
	w.segs = append(w.segs, segment{seq: seq, end: w.off})
	segmentsGauge.Set(float64(len(w.segs)))
	w.opts.Logger.Info("created a new WAL segment", zap.String("path", w.path(seq)), zap.Uint64("last-index", w.idx.last()),
		zap.Duration("took", time.Since(start)))
	return nil
}

// preallocate reserves size bytes for f. On a file of the OS it allocates
// them as part of the file (fallocate without KEEP_SIZE): a later
// fdatasync of data written inside then need not journal a new file size.
func preallocate(f vfs.File, size int64) error {
	if fd := f.Fd(); fd != vfs.InvalidFd {
		err := unix.Fallocate(int(fd), 0, 0, size)
		if err == nil || !errors.Is(err, unix.EOPNOTSUPP) {
			return err
		}
	}
	return f.Preallocate(0, size)
}

// AppendEntries queues entries to be written by the next Commit.
func (w *WAL) AppendEntries(ents []*raftpb.Entry) error {
	for _, e := range ents {
		if err := w.add(kindEntry, e, e.GetIndex()); err != nil {
			return err
		}
	}
	return nil
}

// AppendHardState queues hs to be written by the next Commit.
func (w *WAL) AppendHardState(hs *raftpb.HardState) error {
	return w.add(kindHardState, hs, 0)
}

// AppendTruncate queues the dropping of every entry after index.
func (w *WAL) AppendTruncate(index uint64) error {
	return w.queue(kindTruncate, binary.LittleEndian.AppendUint64(nil, index), index)
}

// add queues one record of a raft message.
func (w *WAL) add(k kind, m proto.Message, index uint64) error {
	if w.err != nil {
		return w.err
	}
	p, err := proto.MarshalOptions{}.MarshalAppend(w.scratch[:0], m)
	if err != nil {
		return err
	}
	w.scratch = p
	return w.queue(k, p, index)
}

type queuedRecord struct {
	kind  kind
	index uint64 // of an entry, or the truncation point
	off   int64  // of an entry's record
	hs    []byte // a hard state
}

func (w *WAL) queue(k kind, p []byte, index uint64) error {
	if w.err != nil {
		return w.err
	}
	if err := w.reserve(headerLen + 1 + len(p)); err != nil {
		return w.failed(err)
	}
	q := queuedRecord{kind: k, index: index, off: w.off + int64(len(w.buf))}
	if k == kindHardState {
		q.hs = append([]byte(nil), p...) // p may be add's scratch
	}
	w.queued = append(w.queued, q)
	w.buf = appendRecord(w.buf, k, p)
	return nil
}

// Discard drops what was appended since the last Commit.
func (w *WAL) Discard() {
	w.buf, w.queued = w.buf[:0], w.queued[:0]
}

// reserve starts a new segment if a record of n bytes does not fit in
// the current one (unless it holds no record yet: a record bigger than a
// segment makes its segment grow).
func (w *WAL) reserve(n int) error {
	at := w.off + int64(len(w.buf))
	if at+int64(n) <= w.opts.SegmentSize || at == w.dataStart {
		return nil
	}
	if err := w.write(); err != nil {
		return err
	}
	return w.roll()
}

// write writes the queued records to the current segment.
func (w *WAL) write() error {
	if len(w.buf) == 0 {
		return nil
	}
	if _, err := w.f.Write(w.buf); err != nil {
		return err
	}
	w.off += int64(len(w.buf))
	w.written += int64(len(w.buf))
	cur := &w.segs[len(w.segs)-1]
	cur.end = w.off
	for _, q := range w.queued {
		switch q.kind {
		case kindEntry:
			if err := w.idx.put(q.index, cur.seq, q.off); err != nil {
				return err
			}
			cur.maxIndex = max(cur.maxIndex, q.index)
		case kindTruncate:
			w.idx.truncate(q.index)
		case kindHardState:
			w.hs = append(w.hs[:0], q.hs...)
		}
	}
	w.Discard()
	return nil
}

// Commit writes what was appended, and with sync makes it durable
// (fdatasync) before it returns. After a failed Commit the WAL refuses
// everything: what reached the disk is unknown, as after any failed
// fsync, so its owner must stop.
//
// Without sync the records are still written (etcd's WAL keeps them in
// its buffer instead): a hard state raft does not need synced (only the
// commit index moved) then survives the process being killed, and
// --force-new-cluster, which keeps the entries up to the WAL's commit
// index (or the store's applied index, if higher), keeps an entry this
// member knew committed and may have acknowledged while its store's apply
// was still in pebble's memory.
func (w *WAL) Commit(sync bool) error {
	if w.err != nil {
		return w.err
	}
	if err := w.write(); err != nil {
		return w.failed(err)
	}
	if sync {
		if err := w.f.SyncData(); err != nil {
			return w.failed(err)
		}
	}
	return nil
}

// ErrFailed is in the error of every call after a failed write or sync.
var ErrFailed = errors.New("raftwal: the WAL failed")

func (w *WAL) failed(err error) error {
	w.err = fmt.Errorf("%w: %w", ErrFailed, err)
	return w.err
}

// Written is how many bytes the WAL has written since it was opened.
func (w *WAL) Written() int64 { return w.written }

// HardState returns the last hard state written (nil if none).
func (w *WAL) HardState() (*raftpb.HardState, error) {
	if len(w.hs) == 0 {
		return nil, nil
	}
	hs := new(raftpb.HardState)
	if err := proto.Unmarshal(w.hs, hs); err != nil {
		return nil, fmt.Errorf("raftwal: hard state: %w", err)
	}
	return hs, nil
}

// Bounds returns the first and last index of the entries the WAL holds
// (first > last: none).
func (w *WAL) Bounds() (first, last uint64) { return w.idx.first, w.idx.last() }

// Empty reports whether the WAL holds no entry and no hard state.
func (w *WAL) Empty() bool { return len(w.hs) == 0 && len(w.idx.pos) == 0 }

// ReadEntries reads the entries [lo, hi) the WAL holds, as many as fit in
// maxSize but at least one; it fails if lo is not held.
func (w *WAL) ReadEntries(lo, hi, maxSize uint64) ([]*raftpb.Entry, error) {
	var ents []*raftpb.Entry
	size := uint64(0)
	for i := lo; i < hi; i++ {
		seq, off, ok := w.idx.get(i)
		if !ok {
			break
		}
		e, err := w.readEntry(seq, off)
		if err != nil {
			return nil, err
		}
		if e.GetIndex() != i {
			return nil, fmt.Errorf("raftwal: segment %s offset %d holds entry %d, not %d", segmentName(seq), off, e.GetIndex(), i)
		}
		sz := uint64(proto.Size(e))
		if len(ents) > 0 && size+sz > maxSize {
			break
		}
		size += sz
		ents = append(ents, e)
	}
	if len(ents) == 0 && lo < hi {
		return nil, fmt.Errorf("raftwal: no log entry %d (the WAL holds %d-%d)", lo, w.idx.first, w.idx.last())
	}
	return ents, nil
}

func (w *WAL) readEntry(seq uint64, off int64) (*raftpb.Entry, error) {
	f, ok := w.readers[seq]
	if !ok {
		var err error
		if f, err = w.opts.FS.Open(w.path(seq)); err != nil {
			return nil, fmt.Errorf("raftwal: %w", err)
		}
		w.readers[seq] = f
	}
	var h [headerLen]byte
	if _, err := f.ReadAt(h[:], off); err != nil {
		return nil, fmt.Errorf("raftwal: segment %s offset %d: %w", segmentName(seq), off, err)
	}
	n, ok := recordLen(h)
	if !ok {
		return nil, fmt.Errorf("raftwal: segment %s offset %d: no record there", segmentName(seq), off)
	}
	body := make([]byte, n)
	if _, err := f.ReadAt(body, off+headerLen); err != nil {
		return nil, fmt.Errorf("raftwal: segment %s offset %d: %w", segmentName(seq), off, err)
	}
	if !intact(h, body) || kind(body[0]) != kindEntry {
		return nil, fmt.Errorf("raftwal: segment %s offset %d: not an intact entry record", segmentName(seq), off)
	}
	p := body[1:]
	e := new(raftpb.Entry)
	if err := proto.Unmarshal(p, e); err != nil {
		return nil, fmt.Errorf("raftwal: segment %s offset %d: entry: %w", segmentName(seq), off, err)
	}
	return e, nil
}

// Release removes the oldest segments that hold no entry after index
// (never the one being written), and forgets their entries. The caller
// makes sure nothing it may need again is at or below index: the entries
// are applied by the store, durably, and behind what slow followers need.
func (w *WAL) Release(index uint64) error {
	if w.err != nil {
		return w.err
	}
	n := 0
	for n < len(w.segs)-1 && w.segs[n].maxIndex <= index {
		n++
	}
	if n == 0 {
		return nil
	}
	for _, s := range w.segs[:n] {
		if f, ok := w.readers[s.seq]; ok {
			f.Close()
			delete(w.readers, s.seq)
		}
		if err := w.opts.FS.Remove(w.path(s.seq)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("raftwal: remove segment: %w", err)
		}
	}
	if err := durabledir.Sync(w.opts.FS, w.opts.Dir); err != nil {
		return fmt.Errorf("raftwal: %w", err)
	}
	w.idx.dropBefore(w.segs[n].seq)
	w.opts.Logger.Info("removed old WAL segments", zap.Int("segments", n), zap.String("up-to", segmentName(w.segs[n-1].seq)),
		zap.Uint64("first-index", w.idx.first))
	w.segs = slices.Delete(w.segs, 0, n)
	segmentsGauge.Set(float64(len(w.segs)))
	return nil
}

// Close closes the WAL's files. What was committed with sync is durable
// already; the rest may be lost.
func (w *WAL) Close() error {
	var errs []error
	for seq, f := range w.readers {
		errs = append(errs, f.Close())
		delete(w.readers, seq)
	}
	if w.f != nil {
		errs = append(errs, w.f.Close())
		w.f = nil
	}
	if w.err == nil {
		w.err = errors.New("raftwal: closed")
	}
	return errors.Join(errs...)
}
