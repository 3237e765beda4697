package transport

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// A frame is uvarint(len(body)) ‖ body, body a marshaled raftpb.Message.

// maxFrameSize bounds one frame. Raft keeps a MsgApp near its
// MaxSizePerMsg (1 MiB in etcd), and a MsgSnap sent on the stream carries
// its data inline, so 64 MiB is far above anything legitimate; a larger
// length is a corrupt or hostile stream, which is closed.
const maxFrameSize = 64 << 20

// keepBufSize: a reader keeps its frame buffer for the next frame only up
// to this size, so one huge frame does not pin memory for the stream's life.
const keepBufSize = 4 << 20

var (
	errFrameTooLarge = errors.New("frame too large")
	// errUnsendable marks a message the writer drops on its own (it cannot
	// be marshaled or framed); the stream itself is fine.
	errUnsendable = errors.New("unsendable message")
)

// frameWriter marshals messages into w, reusing one scratch buffer.
type frameWriter struct {
	w       io.Writer
	scratch []byte
	lenBuf  [binary.MaxVarintLen64]byte
	n       int64 // bytes written
}

func (fw *frameWriter) write(m *raftpb.Message) error {
	b, err := proto.MarshalOptions{}.MarshalAppend(fw.scratch[:0], m)
	if err != nil {
		return fmt.Errorf("%w: marshal %v: %v", errUnsendable, m.GetType(), err)
	}
	if len(b) > maxFrameSize {
		return fmt.Errorf("%w: %v of %d bytes exceeds the %d-byte frame limit", errUnsendable, m.GetType(), len(b), maxFrameSize)
	}
	if cap(b) <= keepBufSize {
		fw.scratch = b
	}
	n := binary.PutUvarint(fw.lenBuf[:], uint64(len(b)))
	if _, err := fw.w.Write(fw.lenBuf[:n]); err != nil {
		return err
	}
	_, err = fw.w.Write(b)
	fw.n += int64(n + len(b))
	return err
}

// appendFrame returns dst with m's frame appended.
func appendFrame(dst []byte, m *raftpb.Message) ([]byte, error) {
	b, err := proto.Marshal(m)
	if err != nil {
		return nil, err
	}
	if len(b) > maxFrameSize {
		return nil, errFrameTooLarge
	}
	dst = binary.AppendUvarint(dst, uint64(len(b)))
	return append(dst, b...), nil
}

// readFrame reads one message. It returns io.EOF only at a clean frame
// boundary; buf is a reusable buffer (returned, possibly grown or dropped).
// proto.Unmarshal copies bytes fields, so buf can be reused at once.
func readFrame(r *bufio.Reader, buf []byte) (*raftpb.Message, []byte, error) {
	n, err := binary.ReadUvarint(r)
	if err != nil {
		return nil, buf, err
	}
	if n > maxFrameSize {
		return nil, buf, fmt.Errorf("%w: %d bytes", errFrameTooLarge, n)
	}
	if buf, err = readBody(r, buf, int(n)); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, buf, err
	}
	m := new(raftpb.Message)
	if err := proto.Unmarshal(buf, m); err != nil {
		return nil, buf, fmt.Errorf("malformed message: %w", err)
	}
	if cap(buf) > keepBufSize {
		buf = nil
	}
	return m, buf, nil
}

// bodyChunk is the first step of a frame buffer's growth: memory not yet
// filled by received bytes is at most max(bodyChunk, bytes received).
const bodyChunk = 64 << 10

// readBody reads n bytes into buf, reused when large enough. A frame's
// length is only the sender's claim: beyond buf's capacity the buffer
// grows with the bytes that arrive (doubling, from bodyChunk), so a stream
// that announces maxFrameSize and ends costs a chunk, not the frame.
func readBody(r io.Reader, buf []byte, n int) ([]byte, error) {
	if cap(buf) >= n {
		buf = buf[:n]
		_, err := io.ReadFull(r, buf)
		return buf, err
	}
	buf = buf[:0]
	for len(buf) < n {
		step := min(n-len(buf), max(len(buf), bodyChunk))
		buf = slices.Grow(buf, step)
		got, err := io.ReadFull(r, buf[len(buf):len(buf)+step])
		buf = buf[:len(buf)+got]
		if err != nil {
			return buf, err
		}
	}
	return buf, nil
}

// Headers. Member and cluster ids are hex, as etcd prints them.
const (
	hdrClusterID = "X-Metastore-Cluster-ID"
	hdrFrom      = "X-Metastore-From"
	hdrTo        = "X-Metastore-To"
	hdrMemberID  = "X-Metastore-Member-ID" // probe and error responses

	pathStream   = "/raft/stream"
	pathSnapshot = "/raft/snapshot"
	pathProbe    = "/raft/probe"
)

func idString(id uint64) string { return strconv.FormatUint(id, 16) }

func parseID(s string) (uint64, error) {
	if s == "" {
		return 0, errors.New("missing")
	}
	return strconv.ParseUint(s, 16, 64)
}

func (t *Transport) setRequestHeaders(h http.Header, to uint64) {
	h.Set(hdrClusterID, idString(t.cfg.ClusterID))
	h.Set(hdrFrom, idString(t.cfg.ID))
	h.Set(hdrTo, idString(to))
}
