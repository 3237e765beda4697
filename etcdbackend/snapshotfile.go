package etcdbackend

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
)

// An etcd snapshot file (`etcdctl snapshot save`) is the backend file
// followed by the SHA-256 of its bytes. bbolt files are a whole number of
// pages, so a file with the checksum is 512n + 32 bytes long: how etcdutl
// tells one from a copy of member/snap/db.

// HasChecksum reports whether a file of n bytes ends with a SHA-256.
func HasChecksum(n int64) bool { return n%512 == sha256.Size }

// ErrMissingHash is etcdutl's refusal of a file without a checksum when
// the check is not skipped.
var ErrMissingHash = errors.New("snapshot missing hash but --skip-hash-check=false")

// VerifySnapshot checks a snapshot file as `etcdutl snapshot restore`
// does, with its error texts: the file must end with a checksum, unless
// skipHashCheck, and the checksum must match the bytes before it.
// progress, if set, is told how many bytes have been hashed.
func VerifySnapshot(path string, skipHashCheck bool, progress func(done, total int64)) error {
	if skipHashCheck {
		return nil
	}
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if !HasChecksum(st.Size()) {
		return ErrMissingHash
	}
	n := st.Size() - sha256.Size
	h := sha256.New()
	buf := make([]byte, 1<<20)
	if _, err := io.CopyBuffer(h, &countingReader{r: io.LimitReader(f, n), total: n, progress: progress}, buf); err != nil {
		return err
	}
	want := make([]byte, sha256.Size)
	if _, err := io.ReadFull(f, want); err != nil {
		return err
	}
	if got := h.Sum(nil); !bytes.Equal(got, want) {
		return fmt.Errorf("expected sha256 %v, got %v", want, got)
	}
	return nil
}

type countingReader struct {
	r        io.Reader
	done     int64
	total    int64
	progress func(done, total int64)
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.done += int64(n)
	if c.progress != nil {
		c.progress(c.done, c.total)
	}
	return n, err
}

// AppendChecksum turns the backend file at path into a snapshot file:
// it appends the SHA-256 of the file's bytes and syncs it.
func AppendChecksum(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(h.Sum(nil)); err != nil {
		f.Close()
		return err
	}
	return errors.Join(f.Sync(), f.Close())
}
