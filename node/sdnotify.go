package node

import (
	"github.com/coreos/go-systemd/v22/daemon"
	"go.uber.org/zap"
)

// notifySystemd tells the service manager the member is up (READY=1 on
// $NOTIFY_SOCKET; nothing without one), so a Type=notify unit — etcd's
// own — counts the service as started only once it serves. As etcd it is
// sent once the member has published itself through raft: a leader
// exists and the member's own proposals commit. etcd logs the same two
// lines, the second also when there is no socket to notify.
func notifySystemd(lg *zap.Logger) {
	lg.Info("notifying init daemon")
	if _, err := daemon.SdNotify(false, daemon.SdNotifyReady); err != nil {
		lg.Error("failed to notify systemd for readiness", zap.Error(err))
		return
	}
	lg.Info("successfully notified init daemon")
}
