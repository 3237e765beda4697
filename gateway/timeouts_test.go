package gateway

import (
	"testing"
	"time"
)

// A timeout channel closes no sooner than the timeout and no later than a
// tick after it; requests within a tick share one.
func TestRequestTimeouts(t *testing.T) {
	const d = 64 * time.Millisecond
	rt := newRequestTimeouts(d)
	start := time.Now()
	a, b := rt.after(), rt.after()
	if a != b {
		t.Fatal("two requests in the same tick got different channels")
	}
	<-a
	if took := time.Since(start); took < d {
		t.Fatalf("closed after %v, before the %v timeout", took, d)
	}
	c := rt.after()
	if c == a {
		t.Fatal("a request after the first channel closed got it again")
	}
	select {
	case <-c:
		t.Fatal("a fresh channel is already closed")
	default:
	}
}
