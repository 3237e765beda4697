package node

import (
	"context"
	"net"
	"syscall"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"
)

// listenConfig binds the member's TCP listeners (client, peer, metrics)
// with the socket options --socket-reuse-port and --socket-reuse-address
// ask for, as etcd's transport.SocketOpts. Unix socket listeners take no
// options, as etcd's.
func (cfg *Config) listenConfig() net.ListenConfig {
	var opts []int
	if cfg.SocketReuseAddress {
		opts = append(opts, unix.SO_REUSEADDR)
	}
	if cfg.SocketReusePort {
		opts = append(opts, unix.SO_REUSEPORT)
	}
	if len(opts) == 0 {
		return net.ListenConfig{}
	}
	return net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			for _, opt := range opts {
				if serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, opt, 1); serr != nil {
					return
				}
			}
		})
		if err != nil {
			return err
		}
		return serr
	}}
}

// listenTCP binds addr with the configured socket options.
func (cfg *Config) listenTCP(addr string) (net.Listener, error) {
	lc := cfg.listenConfig()
	return lc.Listen(context.Background(), "tcp", addr)
}

// logSocketOptions is etcd's line, printed before the listeners are
// bound when any option is set.
func (cfg *Config) logSocketOptions(lg *zap.Logger) {
	if cfg.SocketReuseAddress || cfg.SocketReusePort {
		lg.Info("configuring socket options",
			zap.Bool("reuse-address", cfg.SocketReuseAddress),
			zap.Bool("reuse-port", cfg.SocketReusePort))
	}
}
