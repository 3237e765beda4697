package actors_test

import (
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"go.uber.org/zap"

	"github.com/metastore/metastore/actors"
	"github.com/metastore/metastore/testkit"
)

// A child's panics and restarts are counted under its name, and its
// mailbox depth is what waits in its mailbox.
func TestMetricsSupervision(t *testing.T) {
	kit := testkit.New(t)
	fatal := make(chan error, 16)
	g := &actors.Guardian{Logger: zap.NewNop(), OnFatal: func(err error) { fatal <- err }}
	gpid := kit.Spawn(actors.GuardianProps(g))
	reg := testkit.Registry(t, actors.NewCollector(g))
	// sample is family name's value for the actor, -1 when it has none.
	sample := func(name, actorName string) float64 {
		t.Helper()
		if v, ok := testkit.Gather(t, reg).Value(name, "actor", actorName); ok {
			return v
		}
		return -1
	}
	eventually := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(wait)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out: %s", what)
			}
			time.Sleep(time.Millisecond)
		}
	}

	// A child held in its Receive: what is sent meanwhile waits.
	release := make(chan struct{})
	held := make(chan struct{})
	slow := actor.PropsFromFunc(func(ctx actor.Context) {
		if ctx.Message() == "hold" {
			close(held)
			<-release
		}
	})
	pid := spawnChild(t, kit, gpid, "slow", slow).PID
	kit.Root().Send(pid, "hold")
	<-held
	for range 5 {
		kit.Root().Send(pid, "queued")
	}
	if got := sample("metastore_actor_mailbox_depth", "slow"); got != 5 {
		t.Errorf("mailbox_depth{slow} = %v with 5 messages waiting", got)
	}
	close(release)
	eventually("the mailbox drained", func() bool { return sample("metastore_actor_mailbox_depth", "slow") == 0 })

	// A child that panics: restarted, until it has failed too often.
	boom := spawnChild(t, kit, gpid, "boom", boomer(nil)).PID
	// The counters are process-wide (and there from the spawn on): what
	// earlier runs counted stays.
	p0, r0 := sample("metastore_actor_panics_total", "boom"), sample("metastore_actor_restarts_total", "boom")
	if p0 < 0 || r0 < 0 {
		t.Fatalf("no series for a new child: panics %v, restarts %v", p0, r0)
	}
	kit.Root().Send(boom, "boom")
	eventually("one restart", func() bool {
		return sample("metastore_actor_restarts_total", "boom") == r0+1 && sample("metastore_actor_panics_total", "boom") == p0+1
	})
	for range actors.MaxRestarts {
		kit.Root().Send(boom, "boom")
	}
	select {
	case <-fatal:
	case <-time.After(wait):
		t.Fatal("no OnFatal")
	}
	if p, r := sample("metastore_actor_panics_total", "boom")-p0, sample("metastore_actor_restarts_total", "boom")-r0; p != actors.MaxRestarts+1 || r != actors.MaxRestarts {
		t.Errorf("after %d failures: panics %v, restarts %v (the last one stops it)", actors.MaxRestarts+1, p, r)
	}
	stopChildren(t, kit, gpid)
}
