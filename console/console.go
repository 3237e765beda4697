// Package console is MetaStore's built-in web console: a small browser
// application (ui/, embedded) and the JSON API it calls under /ui/api/.
//
// The console holds no privilege of its own. Every action is a gRPC
// request to the member's own gRPC server over the in-process connection
// the JSON gateway uses, carrying the logged-in user's token as etcd's
// "token" metadata and the browser's address as x-forwarded-for: auth
// checks, limits, interceptors and the audit log see exactly what they
// see for etcdctl. Per-member views (status, defragment, move leader)
// dial the other members' client URLs with the same token. Nothing here
// reads an actor, the store or pebble; the only other input is the
// member's Prometheus gatherer, for the performance sparklines.
//
// Security invariants: the etcd token never leaves the server (a session
// cookie, HttpOnly and SameSite=Strict, names a server-side session);
// every mutating request carries the session's CSRF token in a header and
// a same-origin Origin; every response carries a Content-Security-Policy
// without inline script or style, and the UI writes keys and values as
// text only.
package console

import (
	"context"
	"crypto/tls"
	"embed"
	"io/fs"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"google.golang.org/grpc"

	"github.com/metastore/metastore/actors"
)

// Path is where the console is served: the UI's assets under it, its API
// under Path + "api/".
const Path = "/ui/"

//go:embed ui
var assets embed.FS

// Config is what a console needs from its member.
type Config struct {
	// Conn is the in-process connection to the member's gRPC server.
	Conn *grpc.ClientConn
	// Gatherer is the member's metrics registry (sparklines, progress).
	Gatherer prometheus.Gatherer
	// MemberTLS dials other members' https client URLs (nil: the console
	// reaches only plain-http members and says so for the others).
	MemberTLS *tls.Config
	Logger    *zap.Logger
	// Clock times sessions and samples (default: the wall clock).
	Clock actors.Clock
	// SessionIdle is how long an unused session lasts (default 1h).
	SessionIdle time.Duration
}

// Console serves the UI and its API. It is an http.Handler for Path.
type Console struct {
	cfg      Config
	lg       *zap.Logger
	mux      *http.ServeMux
	sessions *sessions
	members  *memberConns
	sampler  *sampler
}

// New builds the console for one member. It lives until ctx is done,
// when it closes the connections it opened to other members.
func New(ctx context.Context, cfg Config) *Console {
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	if cfg.Clock == nil {
		cfg.Clock = actors.RealClock
	}
	if cfg.SessionIdle <= 0 {
		cfg.SessionIdle = time.Hour
	}
	c := &Console{
		cfg:      cfg,
		lg:       cfg.Logger,
		mux:      http.NewServeMux(),
		sessions: newSessions(cfg.Clock, cfg.SessionIdle, maxSessions),
		members:  newMemberConns(cfg.MemberTLS),
		sampler:  newSampler(cfg.Gatherer, cfg.Clock),
	}
	go func() {
		<-ctx.Done()
		c.members.close()
	}()
	c.routes()
	return c
}

// routes maps the API; everything else under Path is a UI asset.
func (c *Console) routes() {
	ui, _ := fs.Sub(assets, "ui")
	files := http.StripPrefix(Path, http.FileServerFS(ui))
	c.mux.Handle("GET "+Path, files)

	c.get("session", c.serveSession)
	c.post("login", "login", c.serveLogin)
	c.post("logout", "logout", c.serveLogout)

	c.get("keys", c.serveKeys)
	c.get("key", c.serveKey)
	c.get("history", c.serveHistory)
	c.post("put", "put", c.servePut)
	c.post("delete", "delete", c.serveDelete)
	c.get("watch", c.serveWatch)

	c.get("leases", c.serveLeases)
	c.post("lease/revoke", "lease-revoke", c.serveLeaseRevoke)

	c.get("members", c.serveMembers)
	c.post("members/move-leader", "move-leader", c.serveMoveLeader)
	c.post("members/promote", "promote-member", c.servePromote)
	c.post("members/remove", "remove-member", c.serveRemove)
	c.post("alarms/disarm", "disarm-alarm", c.serveDisarm)
	c.post("defrag", "defrag", c.serveDefrag)

	c.get("auth", c.serveAuth)
	c.post("auth/{action}", "", c.serveAuthAction)

	c.get("metrics", c.serveMetrics)
	c.post("compact", "compact", c.serveCompact)
}

// handler is an API endpoint: it runs in a session and answers through
// the reply it returns (w: for cookies and streams).
type handler func(w http.ResponseWriter, r *http.Request, s *session) reply

// get routes a read-only endpoint.
func (c *Console) get(path string, h handler) {
	c.mux.HandleFunc("GET "+Path+"api/"+path, func(w http.ResponseWriter, r *http.Request) {
		s := c.sessions.fromRequest(r)
		if s == nil {
			s = c.sessions.anonymous(w, r)
		}
		h(w, r, s).write(w)
	})
}

// post routes a mutating endpoint: a session must exist and the request
// must pass the CSRF checks (csrf.go) before it runs. action names it in
// metastore_console_requests_total and the log ("": the handler counts
// and logs, as auth actions do under their own names).
func (c *Console) post(path, action string, h handler) {
	c.mux.HandleFunc("POST "+Path+"api/"+path, func(w http.ResponseWriter, r *http.Request) {
		name := action
		if name == "" {
			name = "auth" // not the path's {action}: a label must not take any value a request sends
		}
		s := c.sessions.fromRequest(r)
		if err := checkCSRF(r, s); err != nil {
			c.lg.Warn("console refused a request", zap.String("action", name), zap.String("remote", clientIP(r)), zap.Error(err))
			countRequest(name, resultRefused)
			errorReply(http.StatusForbidden, err.Error()).write(w)
			return
		}
		rep := h(w, r, s)
		if action != "" {
			countRequest(action, rep.result())
		}
		rep.write(w)
	})
}

// ServeHTTP serves the console with its security headers on every
// response.
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", contentSecurityPolicy)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	if strings.HasPrefix(r.URL.Path, Path+"api/") {
		h.Set("Cache-Control", "no-store")
	} else {
		h.Set("Cache-Control", "no-cache")
	}
	c.mux.ServeHTTP(w, r)
}

// contentSecurityPolicy lets the page run only its own files: no inline
// script or style, no eval, no framing, requests to this origin only.
const contentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
