package transport

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"runtime"
	"testing"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"
)

// allocatedBy is how many bytes f allocates (on the heap, in all
// goroutines: the fuzz targets run nothing else meanwhile).
func allocatedBy(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// frameAllocBound is what reading n bytes of frames may allocate: the
// reader's buffer, a little per byte for the frame buffers, and protobuf's
// own expansion (an empty raft entry is 2 bytes on the wire and a struct
// in memory).
func frameAllocBound(n int) uint64 { return 256<<10 + 128*uint64(n) }

// FuzzReadFrame reads a peer stream made of the fuzz input as the stream
// handler does (one reused buffer), and checks that it never panics, that
// a clean end of stream is io.EOF only at a frame boundary, that every
// message read frames and reads back the same, and that what it allocates
// grows with the bytes that arrived, not with the lengths they claim.
func FuzzReadFrame(f *testing.F) {
	frames := func(ms ...*raftpb.Message) []byte {
		var b []byte
		for _, m := range ms {
			var err error
			if b, err = appendFrame(b, m); err != nil {
				f.Fatal(err)
			}
		}
		return b
	}
	typ := raftpb.MsgApp
	entry := &raftpb.Entry{Term: proto.Uint64(2), Index: proto.Uint64(9), Data: []byte("data")}
	app := &raftpb.Message{Type: &typ, From: proto.Uint64(1), To: proto.Uint64(2), Term: proto.Uint64(2), Entries: []*raftpb.Entry{entry, entry}}
	heartbeat := raftpb.MsgHeartbeat
	for _, seed := range [][]byte{
		frames(app),
		frames(app, &raftpb.Message{Type: &heartbeat, From: proto.Uint64(1), To: proto.Uint64(2)}, app),
		frames(),
		binary.AppendUvarint(nil, maxFrameSize), // a frame as large as allowed, with no body
		binary.AppendUvarint([]byte{0}, maxFrameSize+1),                    // an empty frame, then one too large
		append(frames(app), 10, 1, 2),                                      // truncated
		{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}, // a length that overflows
		{3, 0xff, 0xff, 0xff},                                              // a body that is not a message
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		src := bytes.NewReader(data)
		br := bufio.NewReaderSize(src, streamBufSize)
		var msgs []*raftpb.Message
		var err error
		alloc := allocatedBy(func() {
			var buf []byte
			for {
				var m *raftpb.Message
				if m, buf, err = readFrame(br, buf); err != nil {
					return
				}
				msgs = append(msgs, m)
			}
		})
		if alloc > frameAllocBound(len(data)) {
			t.Fatalf("reading %d bytes allocated %d", len(data), alloc)
		}
		if errors.Is(err, io.EOF) && (src.Len() > 0 || br.Buffered() > 0) {
			t.Fatalf("io.EOF with %d bytes unread", src.Len()+br.Buffered())
		}
		for _, m := range msgs {
			b, ferr := appendFrame(nil, m)
			if ferr != nil {
				t.Fatalf("%s does not frame: %v", prototext.Format(m), ferr)
			}
			back, _, rerr := readFrame(bufio.NewReader(bytes.NewReader(b)), nil)
			if rerr != nil || !proto.Equal(back, m) {
				t.Fatalf("%s reads back as %v (%v)", prototext.Format(m), back, rerr)
			}
		}
	})
}

// A frame header is a claim: a peer that announces the largest frame and
// sends a few bytes must not make the receiver allocate the whole frame.
func TestReadFrameAllocatesWhatArrives(t *testing.T) {
	data := append(binary.AppendUvarint(nil, maxFrameSize), "only this"...)
	br := bufio.NewReaderSize(bytes.NewReader(data), streamBufSize)
	var err error
	alloc := allocatedBy(func() { _, _, err = readFrame(br, nil) })
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("err = %v, want %v", err, io.ErrUnexpectedEOF)
	}
	if alloc > frameAllocBound(len(data)) {
		t.Fatalf("a %d-byte stream claiming %d bytes allocated %d", len(data), maxFrameSize, alloc)
	}
}
