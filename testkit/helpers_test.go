package testkit_test

import (
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
)

// recordingTB is a testing.TB whose failures and logs are recorded rather
// than reported, so tests can check that the kit fails when it should.
// Cleanup and everything else go to the real test.
type recordingTB struct {
	testing.TB
	mu       sync.Mutex
	failures []string
	logs     []string
}

func (r *recordingTB) Helper() {}

func (r *recordingTB) Fatalf(format string, args ...any) {
	r.Errorf(format, args...)
	runtime.Goexit()
}

func (r *recordingTB) Errorf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.failures = append(r.failures, fmt.Sprintf(format, args...))
}

func (r *recordingTB) Log(args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.logs = append(r.logs, fmt.Sprint(args...))
}

func (r *recordingTB) failure() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return strings.Join(r.failures, "; ")
}

func (r *recordingTB) logged(substr string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, l := range r.logs {
		if strings.Contains(l, substr) {
			return true
		}
	}
	return false
}

// failure runs f on its own goroutine (Fatalf ends it) with a recording
// TB and returns what f failed with, or "" if it passed.
func failure(t *testing.T, f func(tb testing.TB)) string {
	t.Helper()
	rec := &recordingTB{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		f(rec)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("f did not return")
	}
	return rec.failure()
}

// echo answers every string with itself.
func echo() actor.Actor {
	return actor.ReceiveFunc(func(ctx actor.Context) {
		if s, ok := ctx.Message().(string); ok {
			ctx.Respond(s)
		}
	})
}

const wait = 2 * time.Second // generous: only reached when a test fails
