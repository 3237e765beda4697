// Package testkit is the actor test kit for MetaStore: a fresh
// protoactor-go actor system per test, probes that stand in for actors,
// taps on real actors, capture of supervision and dead-letter events,
// fault injection and a fake clock. protoactor-go (at the version we pin)
// ships no test kit, and its failures are quiet (a panic is recovered,
// logged at Info and the actor restarted), so tests need these tools to
// see what actors do.
//
// All Expect* helpers fail the test with tb.Fatalf, so call them from the
// test goroutine. Timeouts are upper bounds: passing tests never wait for
// them, except ExpectNo*, which wait the full duration (keep it short).
//
// # Fresh actor system per test
//
// New creates an actor system whose logs are discarded (WithLogs sends
// them to t.Log); t.Cleanup stops every actor spawned through the kit,
// waits for them, then shuts the system down.
//
//	kit := testkit.New(t)                          // or New(t, testkit.WithLogs(slog.LevelDebug))
//	pid := kit.Spawn(props)                        // stopped at cleanup
//	kit.Root().Send(pid, msg)
//	kit.Stop(pid)                                  // stop and wait now
//
// # Probes
//
// A Probe is an actor whose received messages are queued for the test.
//
//	p := kit.NewProbe()
//	p.Request(pid, &Get{Key: "a"})                 // pid sees p as Sender; p.Send sends without one
//	resp := testkit.Expect[*GetResponse](p, time.Second)
//	p.ExpectNoMsg(50 * time.Millisecond)
//
// As a stand-in for a dependency, a probe answers whoever asked last:
//
//	q := testkit.Expect[*Propose](p, time.Second)  // the actor under test asked p
//	p.Reply(&Proposed{Index: 7})                   // to p.LastSender(), with p as sender
//
// # Watching for termination
//
//	p.Watch(pid)
//	kit.Root().Poison(pid)
//	p.ExpectTerminated(pid, time.Second)
//
// # Taps on real actors
//
// A Tap records every message a real actor has handled (after its
// Receive returns), so a test can wait for the actor without a probe in
// the middle. Lifecycle messages are skipped unless asked for.
//
//	tap := kit.NewTap()                            // or NewTap(testkit.WithSystemMessages())
//	pid := kit.Spawn(tap.Props(props))             // or actor.WithReceiverMiddleware(tap.Middleware())
//	kit.Root().Send(pid, &Put{Key: "a"})
//	testkit.ExpectTapped[*Put](tap, time.Second)   // the actor has handled it
//
// # Supervisor and dead-letter events
//
//	ev := kit.CaptureEvents()
//	se := ev.ExpectSupervisorEvent(time.Second)    // *actor.SupervisorEvent: Child, Reason, Directive
//	dl := ev.ExpectDeadLetter(time.Second)         // *actor.DeadLetterEvent: PID, Message, Sender
//	ev.ExpectNoSupervisorEvent(0)                  // "nothing crashed so far"
//	n := ev.DeadLetters()                          // also ev.SupervisorEvents()
//
// # Fault injection
//
// PanicOn makes an actor panic (with an InjectedPanic) on the messages a
// predicate picks, before its Receive sees them. Apply it outside a tap
// so the tap still records the fatal message.
//
//	props = testkit.PanicOn(tap.Props(props), func(m any) bool { _, ok := m.(*Put); return ok })
//	// the parent's strategy decides; with OneForOne restart a tap
//	// WithSystemMessages shows
//	// *Put, *actor.Restarting, *actor.Started, and ev shows a
//	// SupervisorEvent whose Reason is testkit.InjectedPanic.
//
// # Fake clock
//
// FakeClock implements actors.Clock. Advance runs due callbacks on the
// caller's goroutine in time order (an Every once per elapsed period).
// Actors arm timers on their own goroutine, so wait for them first.
//
//	clock := testkit.NewFakeClock(time.Unix(0, 0))
//	pid := kit.Spawn(lease.Props(clock))
//	clock.WaitPending(1, time.Second)              // the actor has armed its timer
//	clock.Advance(10 * time.Second)                // expiry runs now, deterministically
//
// The package imports actors, so tests inside package actors itself must
// be external (package actors_test) to use the kit.
//
// # Synchronous actors
//
// Synchronous sets actor.NewSynchronizedDispatcher on props: the actor
// runs on the sender's goroutine, so when Spawn or Send returns it has
// handled Started or the message. It suits unit tests of one actor's
// logic; see Synchronous for the limits.
//
//	pid := kit.Spawn(testkit.Synchronous(props))
//	kit.Root().Send(pid, &Put{Key: "a"})           // handled before Send returns
package testkit
