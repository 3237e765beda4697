package storeactor

import (
	"fmt"
	"time"

	"github.com/metastore/metastore/actors"
)

// The store's settings that can change while the member runs. Each is a
// message to the Store, which puts the value in effect, logs and counts
// the change (actors.SettingChanged) and replies nil; or replies
// Validate's error and changes nothing. The values live in cells that
// outlive restarts of the actor, so a restarted Store keeps them.

// SetQuota changes --quota-backend-bytes (0: etcd's 2 GiB; negative: no
// quota). The next write is checked against the new quota. A NOSPACE
// alarm already raised stays until it is disarmed, as in etcd: raising
// the quota does not let writes through by itself; lowering it makes the
// next write that does not fit raise the alarm.
type SetQuota struct {
	Bytes int64
	Reply chan<- error
}

// Validate accepts every value: each means something to etcd.
func (m *SetQuota) Validate() error { return nil }

// SetWarnApplyDuration changes --warning-apply-duration (0: etcd's
// 100ms): requests applied from then on that take longer are logged as
// "apply request took too long" and counted (etcd_server_slow_apply_total).
type SetWarnApplyDuration struct {
	Duration time.Duration
	Reply    chan<- error
}

// Validate refuses a negative duration.
func (m *SetWarnApplyDuration) Validate() error {
	if m.Duration < 0 {
		return fmt.Errorf("--warning-apply-duration must not be negative (got %v)", m.Duration)
	}
	return nil
}

// defaultWarnApplyDuration is etcd's --warning-apply-duration default.
const defaultWarnApplyDuration = 100 * time.Millisecond

// warnApplyDuration is the threshold a --warning-apply-duration value
// means.
func warnApplyDuration(flag time.Duration) time.Duration {
	if flag <= 0 {
		return defaultWarnApplyDuration
	}
	return flag
}

func (s *Store) setQuota(m *SetQuota) error {
	q := quotaBytes(m.Bytes)
	if old := s.quota.Swap(q); old != q {
		actors.SettingChanged(s.cfg.Logger, "quota-backend-bytes", old, q)
	}
	return nil
}

func (s *Store) setWarnApplyDuration(m *SetWarnApplyDuration) error {
	if err := m.Validate(); err != nil {
		return err
	}
	d := warnApplyDuration(m.Duration)
	if old := time.Duration(s.warn.Swap(int64(d))); old != d {
		actors.SettingChanged(s.cfg.Logger, "warning-apply-duration", old, d)
	}
	return nil
}
