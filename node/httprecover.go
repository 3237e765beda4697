package node

import (
	"bufio"
	"net"
	"net/http"

	"go.uber.org/zap"

	"github.com/metastore/metastore/actors"
)

// recoverHTTP serves h, recovering a panic of its handler: logged (with
// the stack) and counted (actors.ReportPanic under where). net/http would
// recover it too, but reports it only to the server's ErrorLog, which the
// client listeners discard, and drops the connection.
//
// A request whose response has not started gets a 500, and its keep-alive
// connection serves the next request. One whose response is under way
// (the status line has gone out) cannot be answered any more: it is
// aborted (http.ErrAbortHandler), so that the client sees a broken
// response rather than a short one that looks complete.
func recoverHTTP(lg *zap.Logger, where string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tw := &trackingWriter{ResponseWriter: w}
		defer func() {
			p := recover()
			if p == nil {
				return
			}
			if p == http.ErrAbortHandler {
				panic(p) // a handler's deliberate abort, not a failure
			}
			actors.ReportPanic(lg, where, p, zap.String("method", r.Method), zap.String("path", r.URL.Path))
			if tw.started {
				panic(http.ErrAbortHandler)
			}
			http.Error(w, "internal server error", http.StatusInternalServerError)
		}()
		h.ServeHTTP(tw, r)
	})
}

// trackingWriter notes whether the response has started. Flush and Hijack
// are passed through (the JSON gateway streams, the websocket proxy
// hijacks), and Unwrap lets http.ResponseController reach the rest.
type trackingWriter struct {
	http.ResponseWriter
	started bool
}

func (w *trackingWriter) WriteHeader(code int) {
	// 1xx responses are informational: the real status is still to come.
	if code >= 200 {
		w.started = true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *trackingWriter) Write(b []byte) (int, error) {
	w.started = true
	return w.ResponseWriter.Write(b)
}

func (w *trackingWriter) Flush() { _ = w.FlushError() }

// FlushError is what http.ResponseController.Flush calls.
func (w *trackingWriter) FlushError() error {
	w.started = true
	return http.NewResponseController(w.ResponseWriter).Flush()
}

func (w *trackingWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	w.started = true
	return http.NewResponseController(w.ResponseWriter).Hijack()
}

func (w *trackingWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
