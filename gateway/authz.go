package gateway

import (
	"context"
	"strings"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"

	"github.com/metastore/metastore/authactor"
)

// Auth on the request path, as etcd's server does it: the token in the
// request's metadata names a user; reads, watches and admin RPCs are
// checked here against the auth state the store publishes, writes are
// checked by the store at apply as the user (and auth revision) this
// gateway puts in the proposal's header. No mailbox round trip: the state
// and the token table are immutable views read on the caller's goroutine.

// requestAuth returns the auth state and who the request comes from. With
// auth off, or no token sent, the Info is zero (anonymous); a token that is
// not (or no longer) valid is etcd's "invalid auth token".
func (g *Gateway) requestAuth(ctx context.Context) (*authactor.State, authactor.Info, error) {
	st := g.cfg.Store.Auth()
	if !st.Enabled {
		return st, authactor.Info{}, nil
	}
	tok, sent := tokenFrom(ctx)
	if !sent {
		if g.cfg.ClientCertAuth {
			if cn := commonName(ctx); cn != "" {
				return st, authactor.Info{User: cn, Rev: st.Rev}, nil
			}
		}
		return st, authactor.Info{}, nil
	}
	if g.cfg.JWT != nil {
		// A JWT carries the auth revision it was issued at: a newer auth
		// state refuses it as old (the client authenticates again).
		user, rev, ok := g.cfg.JWT.Info(tok)
		if !ok {
			return st, authactor.Info{}, rpctypes.ErrGRPCInvalidAuthToken
		}
		return st, authactor.Info{User: user, Rev: rev}, nil
	}
	// A simple token is dropped when its user changes; it is checked at
	// the current revision.
	user, ok := g.cfg.Tokens.User(tok)
	if !ok {
		return st, authactor.Info{}, rpctypes.ErrGRPCInvalidAuthToken
	}
	return st, authactor.Info{User: user, Rev: st.Rev}, nil
}

// commonName is the common name of the client's verified certificate, if
// it connected over TLS with one. Requests relayed by an HTTP gateway
// (grpcgateway-accept metadata) use that proxy's certificate, never its
// name, as in etcd.
func commonName(ctx context.Context) string {
	p, ok := peer.FromContext(ctx)
	if !ok || p.AuthInfo == nil {
		return ""
	}
	ti, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok {
		return ""
	}
	if len(metadata.ValueFromIncomingContext(ctx, "grpcgateway-accept")) > 0 {
		return ""
	}
	for _, chain := range ti.State.VerifiedChains {
		if len(chain) > 0 {
			return chain[0].Subject.CommonName
		}
	}
	return ""
}

// tokenFrom is the token a client sent: etcd's "token" metadata, or the
// HTTP gateway's "authorization" with an optional "Bearer " prefix. A key
// sent with an empty value is a token (an invalid one), as in etcd.
//
// It looks the keys up without copying the request's metadata (a copy per
// request was 5 % of the server's CPU in the range benchmark with auth).
func tokenFrom(ctx context.Context) (token string, sent bool) {
	ts := metadata.ValueFromIncomingContext(ctx, rpctypes.TokenFieldNameGRPC)
	if len(ts) == 0 {
		ts = metadata.ValueFromIncomingContext(ctx, rpctypes.TokenFieldNameSwagger)
	}
	if len(ts) == 0 {
		return "", false
	}
	return strings.TrimPrefix(ts[0], "Bearer "), true
}

// authorize checks the request as its user against the published auth
// state.
func (g *Gateway) authorize(ctx context.Context, check func(*authactor.State, authactor.Info) error) error {
	st, ai, err := g.requestAuth(ctx)
	if err != nil {
		return err
	}
	return check(st, ai)
}

// authorizedRead is etcd's doSerialize: check the request as its user,
// read, and refuse the answer if the auth state changed in between (the
// client then authenticates again and retries).
func (g *Gateway) authorizedRead(ctx context.Context, check func(*authactor.State, authactor.Info) error, read func() error) error {
	st, ai, err := g.requestAuth(ctx)
	if err != nil {
		return err
	}
	if err := check(st, ai); err != nil {
		return err
	}
	if err := read(); err != nil {
		return err
	}
	if ai.Rev != 0 && ai.Rev != g.cfg.Store.Auth().Rev {
		return rpctypes.ErrGRPCAuthOldRevision
	}
	return nil
}

// requireUser is etcd's requireAuthInfo: with auth on, the request must
// come from an authenticated user.
func (g *Gateway) requireUser(ctx context.Context) error {
	return g.authorize(ctx, (*authactor.State).CheckUser)
}

// requireAdmin is etcd's check for RPCs only a root-role user may call
// (compaction, most of Maintenance).
func (g *Gateway) requireAdmin(ctx context.Context) error {
	return g.authorize(ctx, (*authactor.State).CheckAdmin)
}

// proposalHeader is the header a proposal carries: the user and auth
// revision the store checks it as at apply.
func (g *Gateway) proposalHeader(ctx context.Context, r *pb.InternalRaftRequest) error {
	if r.Authenticate != nil {
		return nil // checked by password, not by token
	}
	_, ai, err := g.requestAuth(ctx)
	if err != nil {
		return err
	}
	if ai.User != "" {
		r.Header = &pb.RequestHeader{Username: ai.User, AuthRevision: ai.Rev}
	}
	return nil
}

// asCaller makes the member's in-process client act as the caller of a
// Lock or Election RPC: the caller's token goes with its calls, so the keys
// the recipes touch are checked against the caller's permissions, as
// etcd's v3lock and v3election are.
func asCaller(ctx context.Context) context.Context {
	if tok, sent := tokenFrom(ctx); sent {
		return metadata.AppendToOutgoingContext(ctx, rpctypes.TokenFieldNameGRPC, tok)
	}
	return ctx
}
