package node

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/metastore/metastore/actors"
	"github.com/metastore/metastore/authactor"
	"github.com/metastore/metastore/compactor"
	"github.com/metastore/metastore/corruption"
	"github.com/metastore/metastore/gateway"
	"github.com/metastore/metastore/storeactor"
)

// Live is the part of a member's configuration that can change while it
// runs. Each value means what the flag means at start (0: the same
// default or "off" as at start).
type Live struct {
	AuthTokenTTL            time.Duration // --auth-token-ttl (simple tokens)
	QuotaBackendBytes       int64         // --quota-backend-bytes (0 = 2 GiB as at start)
	AutoCompactionMode      string        // --auto-compaction-mode
	AutoCompactionRetention time.Duration // --auto-compaction-retention, parsed (0 = off)
	DefragRateBytes         int64         // --defrag-rate-bytes
	WarningApplyDuration    time.Duration // --warning-apply-duration
	CorruptCheckTime        time.Duration // --corrupt-check-time (0 = off)
	// --warning-unary-request-duration (0 = etcd's 300ms, as at start)
	WarningUnaryRequestDuration time.Duration
}

// liveOf is the Live part of a start's configuration.
func liveOf(cfg Config) Live {
	return Live{
		AuthTokenTTL: cfg.AuthTokenTTL, QuotaBackendBytes: cfg.QuotaBackendBytes,
		AutoCompactionMode: cfg.AutoCompactionMode, AutoCompactionRetention: cfg.AutoCompactionRetention,
		DefragRateBytes: cfg.DefragRateBytes, WarningApplyDuration: cfg.WarningApplyDuration,
		CorruptCheckTime: cfg.CorruptCheckTime, WarningUnaryRequestDuration: cfg.WarningUnaryRequestDuration,
	}
}

// Live is what the member runs with now: the start's configuration with
// every change Reconfigure made since.
func (n *Node) Live() Live {
	n.liveMu.Lock()
	defer n.liveMu.Unlock()
	return n.live
}

// Reconfigure changes the settings of l that differ from what the member
// runs with, each by a message to the part that owns it, which puts it in
// effect, logs the change ("changed setting") and counts it
// (metastore_config_reloads_total{setting}):
//
//   - AuthTokenTTL: the simple-token actor (authactor.SetTTL);
//   - QuotaBackendBytes, WarningApplyDuration: the store actor
//     (storeactor.SetQuota, storeactor.SetWarnApplyDuration);
//   - AutoCompactionMode, AutoCompactionRetention: the compactor
//     (compactor.SetPolicy: on, off, or a new mode or retention);
//   - DefragRateBytes: the defragmenter (storeactor.SetDefragRate, a
//     defragmentation under way included);
//   - CorruptCheckTime: the corruption checker (corruption.SetInterval);
//   - WarningUnaryRequestDuration: the gateway's request stats
//     (gateway.SetWarnUnaryDuration).
//
// All or nothing for what a start would refuse: every change is checked
// first, and one that is refused fails Reconfigure with nothing changed.
// A part that does not answer (the member is stopping) fails it; the
// changes told before stay in effect, and Live still reports the old
// values.
func (n *Node) Reconfigure(l Live) error {
	n.liveMu.Lock()
	defer n.liveMu.Unlock()
	changes := n.liveChanges(n.live, l)
	for _, c := range changes {
		if err := c.msg.Validate(); err != nil {
			return err
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), n.cfg.RequestTimeout())
	defer cancel()
	for _, c := range changes {
		if err := c.apply(ctx); err != nil {
			return fmt.Errorf("changing %s: %w", c.setting, err)
		}
	}
	n.live = l
	return nil
}

// liveChange is one owner's part of a Reconfigure.
type liveChange struct {
	setting string
	changed bool
	msg     interface{ Validate() error } // what the owner is told
	apply   func(ctx context.Context) error
}

// liveChanges are the messages that take the member from old to next.
func (n *Node) liveChanges(old, next Live) []liveChange {
	ttl := &authactor.SetTTL{TTL: next.AuthTokenTTL}
	quota := &storeactor.SetQuota{Bytes: next.QuotaBackendBytes}
	warn := &storeactor.SetWarnApplyDuration{Duration: next.WarningApplyDuration}
	policy := &compactor.SetPolicy{Mode: next.AutoCompactionMode, Retention: next.AutoCompactionRetention}
	defrag := &storeactor.SetDefragRate{Bytes: next.DefragRateBytes}
	interval := &corruption.SetInterval{Interval: next.CorruptCheckTime}
	warnUnary := &gateway.SetWarnUnaryDuration{Duration: next.WarningUnaryRequestDuration}
	all := []liveChange{
		{"auth-token-ttl", next.AuthTokenTTL != old.AuthTokenTTL, ttl,
			n.tell(n.tokensPID, func(r chan<- error) any { ttl.Reply = r; return ttl })},
		{"quota-backend-bytes", next.QuotaBackendBytes != old.QuotaBackendBytes, quota,
			n.tell(n.storePID, func(r chan<- error) any { quota.Reply = r; return quota })},
		{"warning-apply-duration", next.WarningApplyDuration != old.WarningApplyDuration, warn,
			n.tell(n.storePID, func(r chan<- error) any { warn.Reply = r; return warn })},
		{"auto-compaction", next.AutoCompactionMode != old.AutoCompactionMode || next.AutoCompactionRetention != old.AutoCompactionRetention, policy,
			n.tell(n.compactorPID, func(r chan<- error) any { policy.Reply = r; return policy })},
		{"defrag-rate-bytes", next.DefragRateBytes != old.DefragRateBytes, defrag,
			func(context.Context) error { return n.defrag.SetRate(defrag) }},
		{"corrupt-check-time", next.CorruptCheckTime != old.CorruptCheckTime, interval,
			n.tell(n.corruptionPID, func(r chan<- error) any { interval.Reply = r; return interval })},
		{"warning-unary-request-duration", next.WarningUnaryRequestDuration != old.WarningUnaryRequestDuration, warnUnary,
			func(context.Context) error {
				gw := n.gw.Load()
				if gw == nil {
					return errors.New("the member is not serving clients yet")
				}
				return gw.SetWarnUnaryDuration(warnUnary)
			}},
	}
	var out []liveChange
	for _, c := range all {
		if c.changed {
			out = append(out, c)
		}
	}
	return out
}

// tell sends pid the message withReply builds around a reply channel and
// returns its answer, or an error when none comes in time.
func (n *Node) tell(pid *actor.PID, withReply func(chan<- error) any) func(context.Context) error {
	return func(ctx context.Context) error {
		select {
		case <-n.quit:
			return errors.New("the member is stopping")
		default:
		}
		err, askErr := actors.Ask(ctx, n.system.Root, pid, withReply)
		if askErr != nil {
			return askErr
		}
		return err
	}
}
