package console

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/metastore/metastore/metrics"
)

// requests counts the console's mutating requests (and logins) by action
// and result, so that an operator sees what is done through the console
// and how often it is refused. Reads are not counted here: they are gRPC
// requests, counted with every other client's.
var requests = prometheus.NewCounterVec(prometheus.CounterOpts{
	Name: "metastore_console_requests_total",
	Help: "Mutating requests (and logins) made through the web console, by action and result (ok, denied, conflict, invalid, error, refused: failed the CSRF checks).",
}, []string{"action", "result"})

// The result label's values.
const (
	resultOK       = "ok"
	resultDenied   = "denied"
	resultConflict = "conflict"
	resultInvalid  = "invalid"
	resultError    = "error"
	resultRefused  = "refused"
)

func init() { metrics.MustRegister(requests) }

func countRequest(action, result string) { requests.WithLabelValues(action, result).Inc() }
