package testkit

import (
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
)

// queue is an unbounded FIFO that producers never block on. Producers are
// actor goroutines and EventStream publishers, which must not wait for a
// slow test; the test goroutine is the only one that waits.
type queue[E any] struct {
	mu     sync.Mutex
	items  []E
	signal chan struct{} // holds a token whenever items may be non-empty
}

func newQueue[E any]() *queue[E] {
	return &queue[E]{signal: make(chan struct{}, 1)}
}

func (q *queue[E]) push(e E) {
	q.mu.Lock()
	q.items = append(q.items, e)
	q.mu.Unlock()
	select {
	case q.signal <- struct{}{}:
	default: // a token is already there
	}
}

func (q *queue[E]) tryPop() (E, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	var zero E
	if len(q.items) == 0 {
		return zero, false
	}
	e := q.items[0]
	q.items[0] = zero
	q.items = q.items[1:]
	return e, true
}

// pop waits up to timeout for an item; timeout <= 0 only looks.
func (q *queue[E]) pop(timeout time.Duration) (E, bool) {
	if e, ok := q.tryPop(); ok || timeout <= 0 {
		return e, ok
	}
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		select {
		case <-q.signal:
			if e, ok := q.tryPop(); ok {
				return e, true
			}
		case <-timer.C:
			return q.tryPop()
		}
	}
}

func (q *queue[E]) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.items)
}

// envelope is a received message and who sent it.
type envelope struct {
	msg    any
	sender *actor.PID
}

// inbox is what a Probe and a Tap share: the queue of messages the test
// has not looked at yet and the sender of the one it looked at last.
type inbox struct {
	tb   testing.TB
	name string
	q    *queue[envelope]

	mu         sync.Mutex
	lastSender *actor.PID
}

func newInbox(tb testing.TB, name string) *inbox {
	return &inbox{tb: tb, name: name, q: newQueue[envelope]()}
}

func (in *inbox) next(timeout time.Duration) (envelope, bool) {
	env, ok := in.q.pop(timeout)
	if ok {
		in.mu.Lock()
		in.lastSender = env.sender
		in.mu.Unlock()
	}
	return env, ok
}

func (in *inbox) sender() *actor.PID {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.lastSender
}

func (in *inbox) expectNoMsg(d time.Duration) {
	in.tb.Helper()
	if env, ok := in.q.pop(d); ok {
		in.tb.Fatalf("testkit: %s: expected no message for %v, got %T: %+v", in.name, d, env.msg, env.msg)
	}
}

// Source is where a test takes messages from: a *Probe or a *Tap.
type Source interface {
	source() *inbox
}

// Expect takes the next message from src, waiting up to timeout, and
// returns it as a T. It fails the test (tb.Fatalf, so call it from the test
// goroutine) if nothing arrives in time or the message is not a T.
// Expect[any] accepts any message.
//
// Go methods cannot have type parameters, hence a function, not a method.
func Expect[T any](src Source, timeout time.Duration) T {
	in := src.source()
	in.tb.Helper()
	env, ok := in.next(timeout)
	if !ok {
		in.tb.Fatalf("testkit: %s: no message within %v, expected %v", in.name, timeout, typeName[T]())
	}
	m, ok := env.msg.(T)
	if !ok {
		in.tb.Fatalf("testkit: %s: expected %v, got %T: %+v", in.name, typeName[T](), env.msg, env.msg)
	}
	return m
}

func typeName[T any]() string {
	return fmt.Sprint(reflect.TypeFor[T]())
}
