package main

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/metastore/metastore/storeactor"
)

// A snapshot file (storeactor/snapshot.go): a tar archive of a pebble
// checkpoint under "db/", 512n bytes, then the SHA-256 of those bytes.

// hasChecksum reports whether a file of n bytes ends with a SHA-256
// trailer: the archive is a multiple of 512 bytes (etcd's rule, too).
func hasChecksum(n int64) bool { return n%512 == sha256.Size }

// errIntegrity prefixes every refusal of a damaged file.
const errIntegrity = "snapshot file integrity check failed"

type snapshotFile struct {
	path     string
	f        *os.File
	size     int64  // the file's length
	archive  int64  // the archive's length (without the trailer)
	checksum []byte // the trailer; nil when the file has none
}

// openSnapshot opens path and finds its parts. A file without a trailer
// is refused unless allowNoHash (restore --skip-hash-check: a copy of an
// archive made without one).
func openSnapshot(p string, allowNoHash bool) (*snapshotFile, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if st.IsDir() {
		f.Close()
		return nil, fmt.Errorf("%s is a directory", p)
	}
	s := &snapshotFile{path: p, f: f, size: st.Size(), archive: st.Size()}
	if hasChecksum(s.size) {
		s.archive = s.size - sha256.Size
		s.checksum = make([]byte, sha256.Size)
		if _, err := f.ReadAt(s.checksum, s.archive); err != nil {
			f.Close()
			return nil, err
		}
	} else if !allowNoHash {
		f.Close()
		return nil, errNoChecksum(s.size)
	}
	return s, nil
}

func errNoChecksum(size int64) error {
	return fmt.Errorf("%s: sha256 checksum not found [bytes: %d]", errIntegrity, size)
}

func (s *snapshotFile) Close() error { return s.f.Close() }

// unpack writes the archive's DB files into dir (created if missing) while
// hashing the archive. With verify, the hash must match the trailer; it
// is compared even when the archive itself turns out to be unreadable, so
// that a damaged file is reported as such. progress, if set, is called
// with the bytes read so far.
func (s *snapshotFile) unpack(dir string, verify bool, progress func(read, total int64)) error {
	if _, err := s.f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	h := sha256.New()
	cr := &progressReader{r: io.LimitReader(s.f, s.archive), total: s.archive, progress: progress}
	in := io.TeeReader(cr, h)
	tarErr := storeactor.ReceiveCheckpoint(vfs.Default, dir, in)
	// Hash what the tar reader did not consume (padding, the end blocks, or
	// everything after a broken entry).
	if _, err := io.Copy(io.Discard, in); err != nil && tarErr == nil {
		tarErr = err
	}
	if verify {
		if err := s.verify(h); err != nil {
			return err
		}
	}
	if tarErr != nil {
		return fmt.Errorf("%s: not a MetaStore snapshot archive: %w", errIntegrity, tarErr)
	}
	return nil
}

func (s *snapshotFile) verify(h hash.Hash) error {
	if s.checksum == nil {
		return errNoChecksum(s.size)
	}
	if got := h.Sum(nil); !bytes.Equal(got, s.checksum) {
		return checksumMismatch{want: s.checksum, got: got}
	}
	return nil
}

// checksumMismatch is a file whose SHA-256 is not its trailer's, in
// etcdutl restore's words (byte slices in decimal), which scripts match.
type checksumMismatch struct{ want, got []byte }

func (e checksumMismatch) Error() string {
	return fmt.Sprintf("expected sha256 %v, got %v", e.want, e.got)
}

// withSnapshotDB checks file (its SHA-256 trailer must match), unpacks
// its DB into a temporary directory, and calls fn with the DB opened
// read-only and the file's size. The directory is removed afterwards.
func withSnapshotDB(file string, fn func(db *pebble.DB, size int64) error) error {
	s, err := openSnapshot(file, false)
	if err != nil {
		return err
	}
	defer s.Close()
	tmp, err := os.MkdirTemp("", "metastoreutl-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	dir := filepath.Join(tmp, "db")
	if err := s.unpack(dir, true, nil); err != nil {
		if errors.As(err, new(checksumMismatch)) {
			err = fmt.Errorf("%s: %w", errIntegrity, err)
		}
		return err
	}
	opts := storeactor.PebbleOptions()
	opts.ReadOnly, opts.ErrorIfNotExists = true, true
	db, err := pebble.Open(dir, opts)
	if err != nil {
		return fmt.Errorf("%s: cannot open the database: %w", errIntegrity, err)
	}
	defer db.Close()
	return fn(db, s.size)
}

// progressReader reports how much has been read, at most every
// progressEvery.
type progressReader struct {
	r        io.Reader
	read     int64
	total    int64
	last     time.Time
	progress func(read, total int64)
}

var progressEvery = 5 * time.Second

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	p.read += int64(n)
	if p.progress != nil {
		now := time.Now()
		if p.last.IsZero() {
			p.last = now
		} else if now.Sub(p.last) >= progressEvery {
			p.last = now
			p.progress(p.read, p.total)
		}
	}
	return n, err
}
