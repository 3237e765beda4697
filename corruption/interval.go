package corruption

import (
	"fmt"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"go.uber.org/zap"

	"github.com/metastore/metastore/actors"
)

// SetInterval changes --corrupt-check-time while the member runs: 0 stops
// the periodic checks, another value starts them or changes their pace,
// the first check an interval after the change (as after a start). A
// check under way finishes. Reply gets nil once the interval is in
// effect, or Validate's error with nothing changed; the change is logged
// and counted (actors.SettingChanged).
type SetInterval struct {
	Interval time.Duration
	Reply    chan<- error
}

// Validate refuses a negative interval.
func (m *SetInterval) Validate() error {
	if m.Interval < 0 {
		return fmt.Errorf("--corrupt-check-time must not be negative (got %v)", m.Interval)
	}
	return nil
}

// startTicks starts the ticks at the interval now, unless it is 0,
// logging as etcd does when it starts checking.
func (c *Checker) startTicks(ctx actor.Context) {
	d := time.Duration(c.interval.Load())
	if d == 0 {
		return
	}
	c.cfg.Logger.Info("enabled corruption checking", zap.String("local-member-id", fmt.Sprintf("%x", c.cfg.Self)), zap.Duration("interval", d))
	self, root := ctx.Self(), ctx.ActorSystem().Root
	c.stop = c.cfg.Clock.Every(d, func() { root.Send(self, tick{}) })
}

func (c *Checker) stopTicks() {
	if c.stop != nil {
		c.stop()
		c.stop = nil
	}
}

func (c *Checker) setInterval(ctx actor.Context, m *SetInterval) error {
	if err := m.Validate(); err != nil {
		return err
	}
	old := time.Duration(c.interval.Swap(int64(m.Interval)))
	if old == m.Interval {
		return nil
	}
	c.stopTicks()
	c.startTicks(ctx)
	actors.SettingChanged(c.cfg.Logger, "corrupt-check-time", old, m.Interval)
	return nil
}
