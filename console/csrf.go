package console

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"mime"
	"net/http"
)

// csrfHeader carries the session's CSRF token on every mutating request.
// The UI reads the token from GET api/session (a same-origin read no
// other site can make) and sends it back; a form or image on another
// site cannot set a header, and a script there cannot send one without a
// CORS preflight the member does not grant for it.
const csrfHeader = "X-Console-CSRF"

// checkCSRF refuses a mutating request that may come from another site:
// without a session, without the session's CSRF token, with an Origin
// (or Sec-Fetch-Site) other than the console's own, or with a body that
// is not JSON (which no HTML form can send). A request without Origin
// (curl, a script) passes with the right token: it holds the session.
func checkCSRF(r *http.Request, s *session) error {
	if s == nil {
		return errors.New("no console session: load the console page first")
	}
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" && site != "same-origin" {
		return fmt.Errorf("cross-site request refused (Sec-Fetch-Site: %s)", site)
	}
	if origin := r.Header.Get("Origin"); origin != "" && origin != sameOrigin(r) {
		return fmt.Errorf("request from origin %q refused", origin)
	}
	tok := r.Header.Get(csrfHeader)
	if tok == "" || subtle.ConstantTimeCompare([]byte(tok), []byte(s.csrf)) != 1 {
		return errors.New("missing or wrong CSRF token: reload the console")
	}
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/json" {
		return errors.New("the request body must be application/json")
	}
	return nil
}

// sameOrigin is the origin the console was loaded from, as a browser
// writes it in Origin.
func sameOrigin(r *http.Request) string {
	if r.TLS != nil {
		return "https://" + r.Host
	}
	return "http://" + r.Host
}
