package compactor

import (
	"fmt"
	"strconv"
	"time"

	"github.com/metastore/metastore/actors"
)

// policy is what --auto-compaction-mode and --auto-compaction-retention
// ask for; retention 0 is off, whatever the mode.
type policy struct {
	mode      string
	retention time.Duration
}

// SetPolicy changes --auto-compaction-mode and --auto-compaction-retention
// while the member runs (Retention as ParseRetention reads it; 0: off).
// Reply gets nil once the policy is in effect, or Validate's error with
// nothing changed. Each setting that changed is logged and counted
// (actors.SettingChanged).
//
// Turning it on, or changing the mode, starts afresh, as etcd does at
// start: a periodic compactor waits a whole retention before its first
// compaction. Turning it off stops it (a compaction already proposed
// still applies). A new retention in the same mode is taken as it is
// running: in revision mode from the next check; in periodic mode with
// the revisions sampled so far when the sampling interval stays the same
// (retentions of an hour and more), so that a lowered retention compacts
// at its next check and a raised one not before its window spans the new
// retention — otherwise afresh. Either way no periodic compaction is ever
// at a revision sampled less than a retention ago.
type SetPolicy struct {
	Mode      string
	Retention time.Duration
	Reply     chan<- error
}

// Validate checks the policy as a start does.
func (m *SetPolicy) Validate() error { return validate(m.Mode, m.Retention) }

// validate refuses a negative retention and, unless the compactor is off
// with no mode given, a mode etcd does not know.
func validate(mode string, retention time.Duration) error {
	if retention < 0 {
		return fmt.Errorf("--auto-compaction-retention must not be negative (got %v)", retention)
	}
	if retention == 0 && mode == "" {
		return nil
	}
	return ValidateMode(mode)
}

func (c *Compactor) setPolicy(m *SetPolicy) error {
	if err := m.Validate(); err != nil {
		return err
	}
	old, next := *c.policy.Load(), policy{mode: m.Mode, retention: m.Retention}
	if next == old {
		return nil
	}
	c.policy.Store(&next)
	if !c.retune(old, next) {
		c.stopAll()
		c.begin()
	}
	if old.mode != next.mode {
		actors.SettingChanged(c.cfg.Logger, "auto-compaction-mode", old.mode, next.mode)
	}
	if old.retention != next.retention {
		actors.SettingChanged(c.cfg.Logger, "auto-compaction-retention", old.flag(), next.flag())
	}
	return nil
}

// flag is the retention as --auto-compaction-retention would give it: a
// number of revisions in revision mode, a duration otherwise.
func (p policy) flag() string {
	if p.mode == ModeRevision {
		return strconv.FormatInt(int64(p.retention), 10)
	}
	return p.retention.String()
}

// retune takes a new retention in the running mode without starting
// afresh, when what the compactor holds stays meaningful (see SetPolicy),
// and reports whether it did.
func (c *Compactor) retune(old, next policy) bool {
	if old.mode != next.mode || old.retention == 0 || next.retention == 0 {
		return false
	}
	if c.mode == ModeRevision {
		c.keep = int64(next.retention)
		return true
	}
	sample, compactIvl, window := Intervals(next.retention)
	if sample != c.sample {
		return false // the samples are spaced for another window
	}
	// The window check (checkPeriodic) keeps every compaction at a sample
	// a retention old, the first one included: compactions need only be
	// spaced from here on.
	c.period, c.compactIvl, c.window, c.wait = next.retention, compactIvl, window, compactIvl
	if n := len(c.revs); n > window {
		c.revs = append(c.revs[:0], c.revs[n-window:]...)
	}
	return true
}
