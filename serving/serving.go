// Package serving runs a member's client and metrics listeners: gRPC and
// HTTP/1.1 on one client port, as etcd serves them.
//
// A plain (http://, unix://) client listener is split per connection by
// its first bytes (cmux, as etcd): an HTTP/2 preface goes to the gRPC
// server's own transport — the fast path, untouched by the HTTP side —
// and HTTP/1.x goes to the HTTP handler. A TLS listener cannot be split
// by its first bytes; etcd serves all of its traffic with net/http and
// hands gRPC requests to the gRPC server's ServeHTTP, a much slower path.
// Here the handshake's ALPN offer decides instead (tlssplit.go): clients
// that offer only HTTP/2 are gRPC clients and get the gRPC transport,
// the rest get net/http, where gRPC requests still reach ServeHTTP.
// A plain listener that serves only gRPC (when --listen-client-http-urls
// takes the HTTP traffic elsewhere) is given to the gRPC server as it is.
package serving

import (
	"crypto/tls"
	"errors"
	"io"
	"log"
	"math"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/soheilhy/cmux"
	"go.uber.org/zap"
	"google.golang.org/grpc"
)

// Traffic is what a client listener serves.
type Traffic int

const (
	GRPCAndHTTP Traffic = iota // the default: both, on one port
	GRPCOnly                   // --listen-client-urls when --listen-client-http-urls is set
	HTTPOnly                   // --listen-client-http-urls
)

func (t Traffic) String() string {
	switch t {
	case GRPCOnly:
		return "grpc"
	case HTTPOnly:
		return "http"
	}
	return "grpc+http"
}

// Servers tracks what it started, to stop it.
type Servers struct {
	lg      *zap.Logger
	mu      sync.Mutex
	closers []io.Closer // root listeners and cmuxes
	https   []*http.Server
	stopped bool
	wg      sync.WaitGroup

	// maxStreams caps the HTTP/2 streams of one connection to a client
	// listener's HTTP server (--max-concurrent-streams; gRPC over TLS
	// goes there when the client offers HTTP/1.1 too), as the gRPC
	// servers cap their own.
	maxStreams uint32
}

// New makes an empty set of servers; client listeners' HTTP/2 servers
// allow maxStreams streams per connection.
func New(lg *zap.Logger, maxStreams uint32) *Servers { return &Servers{lg: lg, maxStreams: maxStreams} }

// Client serves a client listener. tlsCfg is nil for a plain listener;
// gs serves gRPC (nil with HTTPOnly) and, for a TLS listener, must have
// been built with grpc.Creds(HandshakenTLS()); h serves HTTP (nil with
// GRPCOnly).
func (s *Servers) Client(l net.Listener, tlsCfg *tls.Config, traffic Traffic, gs *grpc.Server, h http.Handler) {
	switch {
	case tlsCfg != nil:
		split := newTLSSplit(l, tlsCfg, traffic, s.lg)
		s.track(l)
		s.track(split.grpc)
		s.track(split.http)
		if traffic != HTTPOnly {
			s.run("grpc", l, func() error { return gs.Serve(split.grpc) })
		}
		if traffic != GRPCOnly {
			if traffic == GRPCAndHTTP {
				h = grpcOrHTTP(gs, h)
			}
			srv := s.httpServer(h, nil, s.maxStreams) // its connections come handshaken
			s.run("http", l, func() error { return srv.Serve(split.http) })
		}
		s.run("tls", l, split.serve)
	case traffic == GRPCOnly:
		s.track(l)
		s.run("grpc", l, func() error { return gs.Serve(l) })
	default:
		m := cmux.New(l)
		s.track(closerFunc(func() error { m.Close(); return nil }))
		if traffic == GRPCAndHTTP {
			grpcL := m.Match(cmux.HTTP2())
			s.run("grpc", l, func() error { return gs.Serve(grpcL) })
		}
		httpL := m.Match(cmux.HTTP1())
		srv := s.httpServer(h, nil, s.maxStreams)
		s.run("http", l, func() error { return srv.Serve(httpL) })
		s.run("cmux", l, m.Serve)
	}
}

// HTTP serves h on l (TLS when tlsCfg is set, HTTP/2 by ALPN there).
func (s *Servers) HTTP(l net.Listener, tlsCfg *tls.Config, h http.Handler) {
	s.track(l)
	if tlsCfg != nil {
		tlsCfg = tlsCfg.Clone()
		tlsCfg.NextProtos = []string{"h2", "http/1.1"}
		l = tls.NewListener(l, tlsCfg)
	}
	srv := s.httpServer(h, tlsCfg, math.MaxUint32) // etcd caps client listeners only
	s.run("http", l, func() error { return srv.Serve(l) })
}

// httpServer serves h, with maxStreams HTTP/2 streams per connection.
func (s *Servers) httpServer(h http.Handler, tlsCfg *tls.Config, maxStreams uint32) *http.Server {
	srv := &http.Server{
		Handler:           h,
		TLSConfig:         tlsCfg,
		ReadHeaderTimeout: 5 * time.Minute,
		ErrorLog:          log.New(io.Discard, "", 0), // a client's bad request is not the server's error
		// gRPC streams over TLS are HTTP/2 streams here. net/http takes
		// values above MaxInt32 as its default (250): clamp, as etcd.
		HTTP2: &http.HTTP2Config{MaxConcurrentStreams: int(min(maxStreams, math.MaxInt32))},
	}
	s.mu.Lock()
	s.https = append(s.https, srv)
	s.mu.Unlock()
	return srv
}

// grpcOrHTTP hands gRPC requests (HTTP/2, content type application/grpc)
// to gs and the rest to h.
func grpcOrHTTP(gs *grpc.Server, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ProtoMajor == 2 && strings.HasPrefix(r.Header.Get("Content-Type"), "application/grpc") {
			gs.ServeHTTP(w, r)
			return
		}
		h.ServeHTTP(w, r)
	})
}

func (s *Servers) track(c io.Closer) {
	s.mu.Lock()
	s.closers = append(s.closers, c)
	s.mu.Unlock()
}

func (s *Servers) run(what string, l net.Listener, serve func() error) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		err := serve()
		s.mu.Lock()
		stopped := s.stopped
		s.mu.Unlock()
		if err != nil && !stopped && !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, grpc.ErrServerStopped) && !errors.Is(err, net.ErrClosed) {
			s.lg.Error("serving stopped", zap.String("what", what), zap.String("address", l.Addr().String()), zap.Error(err))
		}
	}()
}

// Stop closes every listener and HTTP server. gRPC servers are the
// caller's to stop (they may serve listeners elsewhere too); Wait waits for
// the serving goroutines once they are.
func (s *Servers) Stop() {
	s.mu.Lock()
	s.stopped = true
	closers, https := s.closers, s.https
	s.mu.Unlock()
	for _, c := range closers {
		c.Close()
	}
	for _, srv := range https {
		srv.Close()
	}
}

type closerFunc func() error

func (f closerFunc) Close() error { return f() }

// Wait waits for every serving goroutine to return.
func (s *Servers) Wait() { s.wg.Wait() }
