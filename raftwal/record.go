package raftwal

import (
	"bufio"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"io"
)

// A segment is a sequence of records, then zeros (the preallocated rest):
//
//	length uint32 LE   of kind + payload, so never 0: 0 is the end
//	crc    uint32 LE   CRC-32C of kind + payload
//	kind   byte
//	payload
//
// A record either reads back whole with its CRC or it ends the segment's
// data: a write torn by a crash leaves a bad record (or a length running
// past the file) where the next record would start.
const headerLen = 8

type kind byte

const (
	// kindSegment opens every segment: its sequence number and where the
	// previous segment's data ended, so that a replay tells a segment cut
	// short by corruption (its data ends before that) from the last
	// segment's torn tail.
	kindSegment kind = 1
	// kindEntry is a raftpb.Entry: it replaces the entry at its index and
	// drops every later one, as raft's log does on append.
	kindEntry kind = 2
	// kindHardState is a raftpb.HardState; the last one read is in force.
	kindHardState kind = 3
	// kindTruncate drops every entry after its index (uint64 LE): a
	// snapshot installed from the leader, or --force-new-cluster's
	// discarding of uncommitted entries.
	kindTruncate kind = 4
)

// maxRecord bounds a record's length as read back: a larger one is
// garbage (a torn or corrupt length), not an allocation to attempt. The
// largest record written is one raft entry, bounded by the request size
// limit (--max-request-bytes) well below this.
const maxRecord = 1 << 30

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// appendRecord appends a record of kind k with payload p to dst.
func appendRecord(dst []byte, k kind, p []byte) []byte {
	crc := crc32.Update(crc32.Update(0, crcTable, []byte{byte(k)}), crcTable, p)
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(p)+1))
	dst = binary.LittleEndian.AppendUint32(dst, crc)
	dst = append(dst, byte(k))
	return append(dst, p...)
}

// errEnd is the end of a segment's data: zeros, the file's end, or a
// record that does not read back whole (which is the end only in the last
// segment; see scan).
var errEnd = errors.New("raftwal: end of segment data")

// recordReader reads a segment's records in order.
type recordReader struct {
	r   *bufio.Reader
	off int64 // where the next record starts
	buf []byte
}

func newRecordReader(r io.Reader) *recordReader {
	return &recordReader{r: bufio.NewReaderSize(r, 1<<20)}
}

// next returns the next record's kind and payload (valid until the next
// call), or errEnd where the data ends, or a read error.
func (rr *recordReader) next() (kind, []byte, error) {
	var h [headerLen]byte
	if _, err := io.ReadFull(rr.r, h[:]); err != nil {
		return 0, nil, endOr(err)
	}
	n, ok := recordLen(h)
	if !ok {
		return 0, nil, errEnd
	}
	if cap(rr.buf) < n {
		rr.buf = make([]byte, n)
	}
	body := rr.buf[:n]
	if _, err := io.ReadFull(rr.r, body); err != nil {
		return 0, nil, endOr(err)
	}
	if !intact(h, body) {
		return 0, nil, errEnd
	}
	rr.off += headerLen + int64(n)
	return kind(body[0]), body[1:], nil
}

// recordLen is the length of the kind and payload a header announces; not
// ok when no record starts there.
func recordLen(h [headerLen]byte) (int, bool) {
	n := binary.LittleEndian.Uint32(h[:])
	return int(n), n != 0 && n <= maxRecord
}

// intact reports whether body (kind and payload) matches its header's CRC.
func intact(h [headerLen]byte, body []byte) bool {
	return crc32.Checksum(body, crcTable) == binary.LittleEndian.Uint32(h[4:])
}

// endOr maps running out of file to errEnd; other errors are I/O errors.
func endOr(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return errEnd
	}
	return err
}
