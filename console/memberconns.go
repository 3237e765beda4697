package console

import (
	"crypto/tls"
	"fmt"
	"net/url"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
)

// memberConns are the console's gRPC connections to other members'
// client URLs, for what only that member can answer (its Status, its
// Defragment) or only the leader can do (MoveLeader). Each request on
// them carries the user's token like any other: the member checks it.
// Connections to URLs no longer in the membership are closed when the
// members are next listed (retain).
type memberConns struct {
	tls *tls.Config // nil: https members cannot be dialed

	mu     sync.Mutex
	conns  map[string]*grpc.ClientConn
	closed bool
}

func newMemberConns(tlsCfg *tls.Config) *memberConns {
	return &memberConns{tls: tlsCfg, conns: map[string]*grpc.ClientConn{}}
}

// get is the connection to a client URL (made on first use).
func (p *memberConns) get(raw string) (*grpc.ClientConn, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, fmt.Errorf("the console is stopping")
	}
	if conn, ok := p.conns[raw]; ok {
		return conn, nil
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, err
	}
	target, creds := u.Host, insecure.NewCredentials()
	switch u.Scheme {
	case "http":
	case "https":
		if p.tls == nil {
			return nil, fmt.Errorf("cannot dial %s: this member has no client certificate files (--cert-file, --trusted-ca-file) to dial https members with", raw)
		}
		creds = credentials.NewTLS(p.tls.Clone())
	case "unix":
		target = "unix:" + u.Host + u.Path
	default:
		return nil, fmt.Errorf("cannot dial %s: unsupported scheme", raw)
	}
	conn, err := grpc.NewClient(target, grpc.WithTransportCredentials(creds))
	if err != nil {
		return nil, err
	}
	p.conns[raw] = conn
	return conn, nil
}

// retain closes the connections to URLs not in keep.
func (p *memberConns) retain(keep map[string]bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for u, conn := range p.conns {
		if !keep[u] {
			conn.Close()
			delete(p.conns, u)
		}
	}
}

func (p *memberConns) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	for u, conn := range p.conns {
		conn.Close()
		delete(p.conns, u)
	}
}
