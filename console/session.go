package console

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"sync"
	"time"

	"github.com/metastore/metastore/actors"
)

// Sessions. A browser holds one cookie: a random session id, HttpOnly
// (scripts cannot read it), SameSite=Strict (other sites' pages do not
// send it) and Secure over TLS. The etcd token of a logged-in session is
// kept here, server-side, never sent to the browser.
//
// A browser that has not logged in (or with auth off, every browser) has
// an anonymous session: its id is in the cookie and nowhere else, and its
// CSRF token is derived from the id with a key of this console, so any
// number of them costs no memory. A login replaces the id (no session
// fixation) with one of a stored session: user, token, CSRF token, last
// use. Stored sessions end at logout, after SessionIdle unused, or when
// the member stops accepting their token; at most maxSessions are kept,
// the least recently used dropped first.

const (
	cookieName  = "metastore_console"
	maxSessions = 4096
)

// session is one browser's: who it is logged in as and its CSRF token.
type session struct {
	id    string
	csrf  string
	user  string // "": anonymous
	token string // the etcd token ("": anonymous)
	seen  time.Time
}

type sessions struct {
	clock actors.Clock
	idle  time.Duration
	max   int
	key   []byte // derives anonymous sessions' CSRF tokens

	mu     sync.Mutex
	stored map[string]*session
}

func newSessions(clock actors.Clock, idle time.Duration, max int) *sessions {
	return &sessions{clock: clock, idle: idle, max: max, key: []byte(randomID()), stored: map[string]*session{}}
}

// fromRequest is the request's session, nil if it sent no session
// cookie. A stored session past its idle time is dropped and the browser
// is anonymous again.
func (ss *sessions) fromRequest(r *http.Request) *session {
	ck, err := r.Cookie(cookieName)
	if err != nil || len(ck.Value) < 40 {
		return nil
	}
	now := ss.clock.Now()
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if s, ok := ss.stored[ck.Value]; ok {
		if now.Sub(s.seen) <= ss.idle {
			s.seen = now
			cp := *s
			return &cp
		}
		delete(ss.stored, ck.Value)
	}
	return ss.anonymousFor(ck.Value)
}

// anonymousFor is the anonymous session of a cookie's id.
func (ss *sessions) anonymousFor(id string) *session {
	m := hmac.New(sha256.New, ss.key)
	m.Write([]byte(id))
	return &session{id: id, csrf: base64.RawURLEncoding.EncodeToString(m.Sum(nil))}
}

// anonymous gives the browser a new anonymous session.
func (ss *sessions) anonymous(w http.ResponseWriter, r *http.Request) *session {
	s := ss.anonymousFor(randomID())
	setCookie(w, r, s.id)
	return s
}

// login stores a new session for user with its etcd token, replacing
// the browser's old one.
func (ss *sessions) login(w http.ResponseWriter, r *http.Request, old *session, user, token string) *session {
	s := &session{id: randomID(), csrf: randomID(), user: user, token: token, seen: ss.clock.Now()}
	ss.mu.Lock()
	if old != nil {
		delete(ss.stored, old.id)
	}
	for len(ss.stored) >= ss.max {
		ss.evictLocked()
	}
	ss.stored[s.id] = s
	ss.mu.Unlock()
	setCookie(w, r, s.id)
	cp := *s
	return &cp
}

// evictLocked drops the least recently used stored session.
func (ss *sessions) evictLocked() {
	var oldest *session
	for _, s := range ss.stored {
		if oldest == nil || s.seen.Before(oldest.seen) {
			oldest = s
		}
	}
	delete(ss.stored, oldest.id)
}

// end drops s (logout, or a token the member no longer accepts).
func (ss *sessions) end(s *session) {
	ss.mu.Lock()
	delete(ss.stored, s.id)
	ss.mu.Unlock()
}

// count is the number of stored (logged-in) sessions.
func (ss *sessions) count() int {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	return len(ss.stored)
}

func setCookie(w http.ResponseWriter, r *http.Request, id string) {
	http.SetCookie(w, &http.Cookie{
		Name: cookieName, Value: id, Path: Path,
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil,
	})
}

// randomID is 32 random bytes, URL-safe base64 (43 characters).
func randomID() string {
	b := make([]byte, 32)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}
