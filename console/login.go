package console

import (
	"fmt"
	"net/http"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// sessionInfo is what the UI learns about its session.
type sessionInfo struct {
	User        string `json:"user"` // "": not logged in
	CSRF        string `json:"csrf"`
	AuthEnabled bool   `json:"authEnabled"`
	Member      string `json:"member,omitempty"`  // this member's id, hex
	Cluster     string `json:"cluster,omitempty"` // hex
	// CertNotice explains why a client certificate the browser presented
	// does not log it in (see certNotice).
	CertNotice string `json:"certNotice,omitempty"`
}

// serveSession tells the UI whether auth is on (etcd's AuthStatus, which
// needs no login) and who the session is logged in as.
func (c *Console) serveSession(_ http.ResponseWriter, r *http.Request, s *session) reply {
	ctx, cancel := asUser(r, s, rpcTimeout)
	defer cancel()
	st, err := pb.NewAuthClient(c.cfg.Conn).AuthStatus(ctx, &pb.AuthStatusRequest{})
	if err != nil {
		return c.fail(s, err)
	}
	info := sessionInfo{User: s.user, CSRF: s.csrf, AuthEnabled: st.Enabled, CertNotice: certNotice(r, st.Enabled)}
	if h := st.Header; h != nil {
		info.Member, info.Cluster = fmt.Sprintf("%x", h.MemberId), fmt.Sprintf("%x", h.ClusterId)
	}
	return ok(info)
}

// certNotice refuses client-certificate login, saying why. The member
// takes a user from a client certificate only when the certificate is
// the gRPC connection's own, verified in its TLS handshake
// (gateway.commonName); the console's requests arrive over the member's
// in-process connection, which has no TLS and cannot carry the browser's
// certificate, and carrying its name in metadata would let any caller of
// that connection (the JSON gateway forwards HTTP headers as metadata)
// claim any user. So a browser with a certificate logs in with a
// password like any other, and is told so.
func certNotice(r *http.Request, authEnabled bool) string {
	if r.TLS == nil || !authEnabled {
		return ""
	}
	for _, chain := range r.TLS.VerifiedChains {
		if len(chain) > 0 && chain[0].Subject.CommonName != "" {
			return fmt.Sprintf("Your browser presented a client certificate for %q. The console cannot log in with a certificate: "+
				"its requests reach the member over an in-process connection that cannot carry your certificate. "+
				"Log in with a user name and password, or use etcdctl with the certificate.", chain[0].Subject.CommonName)
		}
	}
	return ""
}

type loginRequest struct {
	User     string `json:"user"`
	Password string `json:"password"`
}

// serveLogin logs in with etcd's Authenticate (audited by the member as
// any login) and starts a stored session holding the token.
func (c *Console) serveLogin(w http.ResponseWriter, r *http.Request, s *session) reply {
	var req loginRequest
	if err := decode(r, &req); err != nil {
		return badRequest(err.Error())
	}
	ctx, cancel := asUser(r, &session{}, rpcTimeout)
	defer cancel()
	resp, err := pb.NewAuthClient(c.cfg.Conn).Authenticate(ctx, &pb.AuthenticateRequest{Name: req.User, Password: req.Password})
	if err != nil {
		rep := rpcReply(err)
		if status.Code(err) == codes.InvalidArgument {
			rep.status = http.StatusUnauthorized // a wrong user or password
		}
		c.lg.Warn("console login failed", zap.String("user", req.User), zap.String("remote", clientIP(r)), zap.String("error", rep.body.(apiError).Error))
		return rep
	}
	ns := c.sessions.login(w, r, s, req.User, resp.Token)
	c.lg.Info("console login", zap.String("user", req.User), zap.String("remote", clientIP(r)), zap.Int("sessions", c.sessions.count()))
	return ok(sessionInfo{User: ns.user, CSRF: ns.csrf, AuthEnabled: true})
}

// serveLogout ends the session. The etcd token itself lives on until the
// member expires it (etcd has no call to revoke one), but no one has it:
// it never left this server.
func (c *Console) serveLogout(w http.ResponseWriter, r *http.Request, s *session) reply {
	c.sessions.end(s)
	if s.user != "" {
		c.lg.Info("console logout", zap.String("user", s.user), zap.String("remote", clientIP(r)))
	}
	ns := c.sessions.anonymous(w, r)
	return ok(sessionInfo{CSRF: ns.csrf})
}
