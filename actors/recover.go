package actors

import (
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/metastore/metastore/metrics"
)

// Code that runs outside an actor's Receive has no supervisor: a panic on
// a gRPC or HTTP request goroutine, or on a goroutine an actor started,
// would end the process. Each such place recovers, and reports here, what
// the Guardian does for its children: an error log (with the stack, which
// the supervisor's own log lacks) and a count an operator can alert on.

// recoveredPanics counts the panics recovered outside actors.
var recoveredPanics = prometheus.NewCounterVec(prometheus.CounterOpts{
	Name: "metastore_recovered_panics_total",
	Help: "Panics recovered outside the actors' supervision (gRPC and HTTP handlers, helper goroutines), by where they happened.",
}, []string{"where"})

// Where a panic can be recovered: the values of recoveredPanics' label.
const (
	PanicGRPC       = "grpc"       // a gRPC handler or interceptor
	PanicHTTP       = "http"       // an HTTP handler on the client or metrics listeners
	PanicPeerHTTP   = "peer-http"  // an HTTP handler on the peer listeners
	PanicCorruption = "corruption" // a periodic corruption check
	// PanicTLSHandshake: a TLS handshake on a client listener (its
	// certificate callbacks), before a server has the connection.
	PanicTLSHandshake = "tls-handshake"
)

// ReportPanic logs p, a panic just recovered, and counts it under where.
// Call it from the deferred function that recovered p: the goroutine's
// stack still holds the frames that panicked, and the log shows them.
func ReportPanic(lg *zap.Logger, where string, p any, fields ...zap.Field) {
	recoveredPanics.WithLabelValues(where).Inc()
	lg.Error("recovered from a panic", append(fields, zap.String("where", where), zap.Any("panic", p), zap.Stack("stack"))...)
}

// Recover stops a panic of the calling goroutine and reports it. It must
// be deferred directly (defer actors.Recover(lg, where)): recover only
// works in the deferred function itself.
func Recover(lg *zap.Logger, where string) {
	if p := recover(); p != nil {
		ReportPanic(lg, where, p)
	}
}

// Every where has its series from the start (at 0), so that a rate or an
// alert on it works before the first panic.
func init() {
	metrics.MustRegister(recoveredPanics)
	for _, w := range []string{PanicGRPC, PanicHTTP, PanicPeerHTTP, PanicCorruption, PanicTLSHandshake} {
		recoveredPanics.WithLabelValues(w)
	}
}
