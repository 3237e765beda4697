package console

import (
	"encoding/json"
	"errors"
	"net/http"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// reply is an API answer: a JSON body and its status.
type reply struct {
	status int
	body   any
	// written: the handler already answered (a stream).
	written bool
}

// apiError is every error's body: etcd's error text (rpctypes) as the
// gRPC request got it, its gRPC code, and whether the user must log in
// (again) to go on.
type apiError struct {
	Error string `json:"error"`
	Code  string `json:"code,omitempty"`
	Login bool   `json:"login,omitempty"`
}

func ok(body any) reply { return reply{status: http.StatusOK, body: body} }

func errorReply(code int, msg string) reply {
	return reply{status: code, body: apiError{Error: msg}}
}

func badRequest(msg string) reply { return errorReply(http.StatusBadRequest, msg) }

// rpcReply is a failed gRPC request's reply: its status mapped to HTTP
// (permission denied is 403, a missing or stale login 401, ...) with
// etcd's own words.
func rpcReply(err error) reply {
	st, _ := status.FromError(err)
	e := apiError{Error: rpctypes.ErrorDesc(err), Code: st.Code().String()}
	code := httpStatus(st.Code())
	if needsLogin(err) {
		code, e.Login = http.StatusUnauthorized, true
	}
	return reply{status: code, body: e}
}

// needsLogin reports whether err means the request had no usable login:
// no token with auth on, a token the member no longer knows (expired, or
// dropped with its user), or one issued before the auth state changed.
func needsLogin(err error) bool {
	for _, e := range []error{rpctypes.ErrGRPCUserEmpty, rpctypes.ErrGRPCInvalidAuthToken, rpctypes.ErrGRPCAuthOldRevision} {
		if errors.Is(err, e) || rpctypes.ErrorDesc(err) == rpctypes.ErrorDesc(e) {
			return true
		}
	}
	return false
}

func httpStatus(c codes.Code) int {
	switch c {
	case codes.OK:
		return http.StatusOK
	case codes.InvalidArgument, codes.OutOfRange:
		return http.StatusBadRequest
	case codes.Unauthenticated:
		return http.StatusUnauthorized
	case codes.PermissionDenied:
		return http.StatusForbidden
	case codes.NotFound:
		return http.StatusNotFound
	case codes.FailedPrecondition, codes.AlreadyExists, codes.Aborted:
		return http.StatusConflict
	case codes.ResourceExhausted:
		return http.StatusTooManyRequests
	case codes.Unavailable, codes.Canceled:
		return http.StatusServiceUnavailable
	case codes.DeadlineExceeded:
		return http.StatusGatewayTimeout
	}
	return http.StatusInternalServerError
}

// result is the reply's label in metastore_console_requests_total.
func (r reply) result() string {
	switch {
	case r.status < 300:
		return resultOK
	case r.status == http.StatusUnauthorized || r.status == http.StatusForbidden:
		return resultDenied
	case r.status == http.StatusConflict:
		return resultConflict
	case r.status < 500:
		return resultInvalid
	}
	return resultError
}

func (r reply) write(w http.ResponseWriter) {
	if r.written {
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(r.status)
	json.NewEncoder(w).Encode(r.body)
}

// decode reads a mutating request's JSON body into v (at most 4 MiB: a
// value of the largest request a member takes, base64-encoded).
func decode(r *http.Request, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(nil, r.Body, 4<<20))
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}
