package serving

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"slices"
	"sync"
	"time"

	"go.uber.org/zap"
	"google.golang.org/grpc/credentials"

	"github.com/metastore/metastore/actors"
)

// handshakeTimeout bounds a client's TLS handshake: a connection that
// never finishes one must not hold a goroutine forever.
const handshakeTimeout = 10 * time.Second

// tlsSplit serves a TLS client listener with both protocols without
// giving up the gRPC server's own transport. It completes each handshake
// itself, off the accept loop, and routes the connection by what the
// client offered in ALPN: gRPC clients offer only HTTP/2 ("h2"; gRPC's C
// core adds "grpc-exp"), so a connection that did not offer HTTP/1.1
// goes to the gRPC server's transport; one that did (curl, browsers, Go's
// net/http, load balancers' checks) goes to net/http — which still hands
// a gRPC request to the gRPC server's ServeHTTP, so a gRPC client that
// offers both works too, only on the slower path etcd uses for all TLS
// traffic.
type tlsSplit struct {
	lg         *zap.Logger
	l          net.Listener
	cfg        *tls.Config
	traffic    Traffic
	grpc, http *connQueue
}

func newTLSSplit(l net.Listener, cfg *tls.Config, traffic Traffic, lg *zap.Logger) *tlsSplit {
	cfg = cfg.Clone()
	cfg.NextProtos = []string{"h2", "http/1.1"}
	return &tlsSplit{lg: lg, l: l, cfg: cfg, traffic: traffic, grpc: newConnQueue(l.Addr()), http: newConnQueue(l.Addr())}
}

func (s *tlsSplit) serve() error {
	defer s.grpc.Close()
	defer s.http.Close()
	for {
		c, err := s.l.Accept()
		if err != nil {
			return err
		}
		go s.handshake(c)
	}
}

// handshake runs on a goroutine of its own, before any server has the
// connection: a panic in the handshake's callbacks (the member's
// certificate checks run there, on what a client not yet authenticated
// sent) would end the process. It ends the connection instead, logged
// and counted, as net/http does for its own handshakes.
func (s *tlsSplit) handshake(raw net.Conn) {
	defer func() {
		if p := recover(); p != nil {
			actors.ReportPanic(s.lg, actors.PanicTLSHandshake, p, zap.Stringer("remote", raw.RemoteAddr()))
			raw.Close()
		}
	}()
	var offered []string
	cfg := s.cfg.Clone()
	base := s.cfg.GetConfigForClient
	cfg.GetConfigForClient = func(h *tls.ClientHelloInfo) (*tls.Config, error) {
		offered = h.SupportedProtos
		if base != nil {
			return base(h)
		}
		return nil, nil
	}
	tc := tls.Server(raw, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), handshakeTimeout)
	err := tc.HandshakeContext(ctx)
	cancel()
	if err != nil {
		raw.Close() // as net/http: a failed handshake is the client's problem
		return
	}
	toGRPC := s.traffic == GRPCOnly ||
		s.traffic == GRPCAndHTTP && len(offered) > 0 && !slices.Contains(offered, "http/1.1")
	if routed != nil {
		routed(toGRPC)
	}
	if toGRPC {
		s.grpc.put(tc)
	} else {
		s.http.put(tc)
	}
}

// routed, when set (tests), is told where each TLS connection went.
var routed func(toGRPC bool)

// connQueue is a net.Listener fed connections by put.
type connQueue struct {
	addr net.Addr
	ch   chan net.Conn
	done chan struct{}
	once sync.Once
}

func newConnQueue(addr net.Addr) *connQueue {
	return &connQueue{addr: addr, ch: make(chan net.Conn), done: make(chan struct{})}
}

func (q *connQueue) put(c net.Conn) {
	select {
	case q.ch <- c:
	case <-q.done:
		c.Close()
	}
}

func (q *connQueue) Accept() (net.Conn, error) {
	select {
	case c := <-q.ch:
		return c, nil
	case <-q.done:
		return nil, net.ErrClosed
	}
}

func (q *connQueue) Close() error {
	q.once.Do(func() { close(q.done) })
	return nil
}

func (q *connQueue) Addr() net.Addr { return q.addr }

// HandshakenTLS is the transport credentials of a gRPC server that serves
// TLS client listeners through Servers.Client: the handshake is already
// done (tlsSplit), so it only reports the connection's TLS state — the
// verified client certificate that --client-cert-auth reads.
func HandshakenTLS() credentials.TransportCredentials { return handshakenTLS{} }

type handshakenTLS struct{}

func (handshakenTLS) ServerHandshake(c net.Conn) (net.Conn, credentials.AuthInfo, error) {
	tc, ok := c.(*tls.Conn)
	if !ok {
		return nil, nil, errors.New("serving: a TLS listener's gRPC server got a connection without TLS")
	}
	return c, credentials.TLSInfo{
		State:          tc.ConnectionState(),
		CommonAuthInfo: credentials.CommonAuthInfo{SecurityLevel: credentials.PrivacyAndIntegrity},
	}, nil
}

func (handshakenTLS) ClientHandshake(context.Context, string, net.Conn) (net.Conn, credentials.AuthInfo, error) {
	return nil, nil, errors.New("serving: HandshakenTLS is for servers")
}

func (handshakenTLS) Info() credentials.ProtocolInfo {
	return credentials.ProtocolInfo{SecurityProtocol: "tls", SecurityVersion: "1.2"}
}

func (c handshakenTLS) Clone() credentials.TransportCredentials { return c }
func (handshakenTLS) OverrideServerName(string) error           { return nil }
