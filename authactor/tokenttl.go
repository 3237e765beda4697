package authactor

import (
	"fmt"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/metastore/metastore/actors"
)

// DefaultTokenTTL is etcd's --auth-token-ttl default, and what a TTL of 0
// means.
const DefaultTokenTTL = 300 * time.Second

// SetTTL changes --auth-token-ttl while the member runs. A token issued
// from then on, and any token at its next use, is valid until the new TTL
// passes without use; a token keeps the deadline its last use gave it
// until then (as etcd's keeper, which sets a deadline on each use). The
// sweep of idle tokens runs every TTL/2 from the change on. Reply gets
// nil once the TTL is in effect, or Validate's error with nothing
// changed.
type SetTTL struct {
	TTL   time.Duration // 0: DefaultTokenTTL
	Reply chan<- error
}

// Validate refuses a TTL no start would run with.
func (m *SetTTL) Validate() error {
	if m.TTL < 0 {
		return fmt.Errorf("--auth-token-ttl must not be negative (got %v)", m.TTL)
	}
	return nil
}

// armSweep starts the sweep of idle tokens, every TTL/2.
func (s *SimpleTokens) armSweep(ctx actor.Context) {
	self, root := ctx.Self(), ctx.ActorSystem().Root
	s.stop = s.cfg.Clock.Every(time.Duration(s.ttl.Load())/2, func() { root.Send(self, sweep{}) })
}

// setTTL puts ttl in effect for the view and the actor, and re-arms the
// sweep at its new pace. The TTL lives in a cell that outlives restarts
// of the actor, so a restarted actor keeps it.
func (s *SimpleTokens) setTTL(ctx actor.Context, m *SetTTL) error {
	if err := m.Validate(); err != nil {
		return err
	}
	ttl := m.TTL
	if ttl == 0 {
		ttl = DefaultTokenTTL
	}
	old := time.Duration(s.ttl.Load())
	if ttl == old {
		return nil
	}
	s.ttl.Store(int64(ttl))
	if s.stop != nil {
		s.stop()
	}
	s.armSweep(ctx)
	actors.SettingChanged(s.cfg.Logger, "auth-token-ttl", old, ttl)
	return nil
}
