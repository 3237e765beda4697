package authactor

import (
	"crypto"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/metastore/metastore/actors"
)

// Errors of --auth-token=jwt, with etcd's messages (server/auth/store.go),
// so a member refuses a bad configuration the way etcd does.
var (
	ErrInvalidAuthOpts   = errors.New("auth: invalid auth options")
	ErrInvalidAuthMethod = errors.New("auth: invalid auth signature method")
	ErrMissingKey        = errors.New("auth: missing key data")
	ErrKeyMismatch       = errors.New("auth: public and private keys don't match")
	ErrVerifyOnly        = errors.New("auth: token signing attempted with verify-only key")
)

// DefaultJWTTTL is the lifetime of a JWT when the options give no ttl
// (etcd's auth.DefaultTTL). --auth-token-ttl does not apply to JWTs.
const DefaultJWTTTL = 5 * time.Minute

// JWTTokens issues and checks etcd's JWT auth tokens (--auth-token=jwt,...).
// It is immutable after construction and safe for concurrent use.
//
// Unlike simple tokens, a JWT carries its user and auth revision itself and
// is signed, so any member holding the verification key can check it
// without shared state, and it expires at its exp claim whether used or not.
type JWTTokens struct {
	method   jwt.SigningMethod
	signKey  any // nil when verify-only: only a public key was given
	checkKey any
	ttl      time.Duration
	clock    actors.Clock
	parser   *jwt.Parser
}

// NewJWTTokens parses the options after "jwt," (e.g. "pub-key=a.pem,priv-key=b.pem,sign-method=RS256,ttl=10m")
// and loads the keys. clock gives "now" for exp (actors.Clock from github.com/metastore/metastore/actors: Now() time.Time).
//
// As etcd: sign-method is required and case sensitive; ttl defaults to 5m
// and is not range checked; an empty value counts as absent; unknown options
// are ignored. A malformed option list, an unreadable file, a bad ttl or an
// unknown sign-method is ErrInvalidAuthOpts (wrapping the cause, which etcd
// only logs). HMAC methods use the priv-key file's bytes, exactly, as the
// secret. For asymmetric methods a public key alone makes the member
// verify-only; both keys must be a pair (ErrKeyMismatch); neither is
// ErrMissingKey; a key that does not parse is the jwt library's error.
func NewJWTTokens(opts string, clock actors.Clock) (*JWTTokens, error) {
	if clock == nil {
		clock = actors.RealClock
	}
	m, err := jwtOptions(opts)
	if err != nil {
		return nil, err
	}
	ttl := DefaultJWTTTL
	if s := m["ttl"]; s != "" {
		if ttl, err = time.ParseDuration(s); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrInvalidAuthOpts, err)
		}
	}
	pubPEM, err := readOpt(m, "pub-key")
	if err != nil {
		return nil, err
	}
	privPEM, err := readOpt(m, "priv-key")
	if err != nil {
		return nil, err
	}
	method := jwt.GetSigningMethod(m["sign-method"])
	if method == nil {
		return nil, fmt.Errorf("%w: %w %q", ErrInvalidAuthOpts, ErrInvalidAuthMethod, m["sign-method"])
	}

	j := &JWTTokens{method: method, ttl: ttl, clock: clock}
	switch method.(type) {
	case *jwt.SigningMethodHMAC:
		if len(privPEM) == 0 {
			return nil, ErrMissingKey
		}
		j.signKey, j.checkKey = privPEM, privPEM
	case *jwt.SigningMethodRSA, *jwt.SigningMethodRSAPSS:
		err = j.loadPair(privPEM, pubPEM, parseAs(jwt.ParseRSAPrivateKeyFromPEM), parseAs(jwt.ParseRSAPublicKeyFromPEM))
	case *jwt.SigningMethodECDSA:
		err = j.loadPair(privPEM, pubPEM, parseAs(jwt.ParseECPrivateKeyFromPEM), parseAs(jwt.ParseECPublicKeyFromPEM))
	case *jwt.SigningMethodEd25519:
		err = j.loadPair(privPEM, pubPEM, parseAs(jwt.ParseEdPrivateKeyFromPEM), parseAs(jwt.ParseEdPublicKeyFromPEM))
	default: // "none", registered by the jwt library but never acceptable
		err = fmt.Errorf("unsupported signing method: %T", method)
	}
	if err != nil {
		return nil, err
	}
	// Only the configured algorithm is accepted: this is what stops "none"
	// and key confusion (an HS256 token "signed" with the public key bytes).
	j.parser = jwt.NewParser(jwt.WithValidMethods([]string{method.Alg()}), jwt.WithTimeFunc(clock.Now))
	return j, nil
}

// jwtOptions splits "k=v,k=v" as etcd's decomposeOpts does: every part
// must be exactly one key=value, and a key may appear once.
func jwtOptions(opts string) (map[string]string, error) {
	m := map[string]string{}
	if opts == "" {
		return m, nil
	}
	for _, kv := range strings.Split(opts, ",") {
		pair := strings.Split(kv, "=")
		if len(pair) != 2 {
			return nil, fmt.Errorf("%w: malformed option %q", ErrInvalidAuthOpts, kv)
		}
		if _, dup := m[pair[0]]; dup {
			return nil, fmt.Errorf("%w: duplicate option %q", ErrInvalidAuthOpts, pair[0])
		}
		m[pair[0]] = pair[1]
	}
	return m, nil
}

// readOpt reads the file an option names, if it names one.
func readOpt(m map[string]string, opt string) ([]byte, error) {
	if m[opt] == "" {
		return nil, nil
	}
	b, err := os.ReadFile(m[opt])
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidAuthOpts, err)
	}
	return b, nil
}

// parseAs adapts a typed key parser of the jwt library to loadPair.
func parseAs[K any](parse func([]byte) (K, error)) func([]byte) (any, error) {
	return func(b []byte) (any, error) { return parse(b) }
}

// loadPair sets the keys of an asymmetric method from whichever of the two
// PEM blocks were given.
func (j *JWTTokens) loadPair(privPEM, pubPEM []byte, parsePriv, parsePub func([]byte) (any, error)) error {
	var priv, pub any
	var err error
	if len(privPEM) > 0 {
		if priv, err = parsePriv(privPEM); err != nil {
			return err
		}
	}
	if len(pubPEM) > 0 {
		if pub, err = parsePub(pubPEM); err != nil {
			return err
		}
	}
	switch {
	case priv == nil && pub == nil:
		return ErrMissingKey
	case priv == nil:
		j.checkKey = pub
		return nil
	}
	own := priv.(crypto.Signer).Public()
	if pub != nil && !pub.(interface{ Equal(crypto.PublicKey) bool }).Equal(own) {
		return ErrKeyMismatch
	}
	j.signKey, j.checkKey = priv, own
	return nil
}

// Assign signs a token for user at auth revision rev.
func (j *JWTTokens) Assign(user string, rev uint64) (string, error) {
	if j.signKey == nil {
		return "", ErrVerifyOnly
	}
	return jwt.NewWithClaims(j.method, jwt.MapClaims{
		"username": user,
		"revision": rev,
		"exp":      j.clock.Now().Add(j.ttl).Unix(),
	}).SignedString(j.signKey)
}

// Info checks a token and returns the user and auth revision it carries; ok is false for any invalid token.
//
// As etcd, exp is checked when present but not required (tokens minted
// elsewhere with the shared key may omit it), and revision is read as a
// JSON number, so it is exact up to 2^53.
func (j *JWTTokens) Info(token string) (user string, rev uint64, ok bool) {
	parsed, err := j.parser.Parse(token, func(*jwt.Token) (any, error) { return j.checkKey, nil })
	if err != nil || !parsed.Valid {
		return "", 0, false
	}
	claims, isMap := parsed.Claims.(jwt.MapClaims)
	if !isMap {
		return "", 0, false
	}
	user, okUser := claims["username"].(string)
	r, okRev := claims["revision"].(float64)
	// etcd converts any number; Go leaves out-of-range conversions
	// undefined, so those are refused rather than guessed.
	if !okUser || !okRev || !(r >= 0 && r < 1<<64) {
		return "", 0, false
	}
	return user, uint64(r), true
}
