package main

import (
	"bytes"
	"strings"
	"testing"
)

// Nothing is drawn unless stderr is a terminal; on one, the line that
// stays once a phase is done shows its last count, even one set sooner
// after the previous drawing than a redraw is allowed.
func TestProgressBar(t *testing.T) {
	var buf bytes.Buffer
	quiet := newProgressBar(&buf)
	quiet.start("copying versions", "revisions")
	quiet.set(5, 10)
	quiet.done()
	if buf.Len() != 0 {
		t.Fatalf("drew on a non-terminal: %q", buf.String())
	}

	bar := &progressBar{w: &buf}
	bar.start("indexing keys", "keys")
	bar.set(1, 0)
	bar.set(4096, 0) // within progressRedraw: not drawn yet
	bar.done()
	lines := strings.Split(buf.String(), "\r")
	if last := lines[len(lines)-1]; !strings.HasPrefix(last, "indexing keys      4096 keys") || !strings.HasSuffix(last, "\n") {
		t.Fatalf("last drawing %q", last)
	}
	buf.Reset()
	bar.start("copying versions", "revisions")
	bar.set(10, 10)
	bar.done()
	if !strings.Contains(buf.String(), "[==============================] 100.0%  10/10 revisions") {
		t.Fatalf("full bar: %q", buf.String())
	}
}
