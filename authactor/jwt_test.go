package authactor_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/metastore/metastore/authactor"
	"github.com/metastore/metastore/testkit"
)

var t0 = time.Unix(1_700_000_000, 0)

// keys are generated once per test binary: RSA generation dominates the
// run time otherwise. 1024-bit RSA is enough to exercise the code.
var keys = sync.OnceValue(func() map[string]crypto.Signer {
	m := map[string]crypto.Signer{}
	for _, name := range []string{"rsa", "rsa2"} {
		k, err := rsa.GenerateKey(rand.Reader, 1024)
		if err != nil {
			panic(err)
		}
		m[name] = k
	}
	for name, c := range map[string]elliptic.Curve{"p256": elliptic.P256(), "p256b": elliptic.P256(), "p384": elliptic.P384()} {
		k, err := ecdsa.GenerateKey(c, rand.Reader)
		if err != nil {
			panic(err)
		}
		m[name] = k
	}
	for _, name := range []string{"ed", "ed2"} {
		_, k, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			panic(err)
		}
		m[name] = k
	}
	return m
})

// keyFiles writes the named key as PKCS#8 and PKIX PEM files (what
// `openssl genpkey` / `openssl pkey -pubout` write) and returns their paths.
func keyFiles(t *testing.T, name string) (priv, pub string) {
	t.Helper()
	k := keys()[name]
	privDER, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	pubDER, err := x509.MarshalPKIXPublicKey(k.Public())
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	priv, pub = filepath.Join(dir, name+".key"), filepath.Join(dir, name+".pub")
	writeFile(t, priv, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: privDER}))
	writeFile(t, pub, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER}))
	return priv, pub
}

func writeFile(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func secretFile(t *testing.T, secret string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "secret")
	writeFile(t, p, []byte(secret))
	return p
}

func newJWT(t *testing.T, opts string, clock *testkit.FakeClock) *authactor.JWTTokens {
	t.Helper()
	j, err := authactor.NewJWTTokens(opts, clock)
	if err != nil {
		t.Fatalf("NewJWTTokens(%q): %v", opts, err)
	}
	return j
}

// decode returns a token's header and claims without checking anything.
func decode(t *testing.T, token string) (header, claims map[string]any) {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("token %q has %d parts", token, len(parts))
	}
	for i, dst := range []*map[string]any{&header, &claims} {
		b, err := base64.RawURLEncoding.DecodeString(parts[i])
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, dst); err != nil {
			t.Fatal(err)
		}
	}
	return header, claims
}

func TestJWTRoundTrip(t *testing.T) {
	for _, tc := range []struct{ method, key string }{
		{"RS256", "rsa"}, {"RS512", "rsa"}, {"PS256", "rsa"},
		{"ES256", "p256"}, {"ES384", "p384"},
		{"EdDSA", "ed"},
		{"HS256", ""}, {"HS512", ""},
	} {
		t.Run(tc.method, func(t *testing.T) {
			var opts string
			if tc.key == "" {
				opts = "priv-key=" + secretFile(t, "a shared secret\n")
			} else {
				priv, pub := keyFiles(t, tc.key)
				opts = "pub-key=" + pub + ",priv-key=" + priv
			}
			clock := testkit.NewFakeClock(t0)
			j := newJWT(t, opts+",sign-method="+tc.method+",ttl=10m", clock)
			tok, err := j.Assign("alice", 42)
			if err != nil {
				t.Fatal(err)
			}
			header, claims := decode(t, tok)
			if header["alg"] != tc.method {
				t.Errorf("alg = %v, want %s", header["alg"], tc.method)
			}
			want := map[string]any{"username": "alice", "revision": 42.0, "exp": float64(t0.Add(10 * time.Minute).Unix())}
			if len(claims) != len(want) {
				t.Errorf("claims = %v, want %v", claims, want)
			}
			for k, v := range want {
				if claims[k] != v {
					t.Errorf("claim %s = %v, want %v", k, claims[k], v)
				}
			}
			if u, r, ok := j.Info(tok); !ok || u != "alice" || r != 42 {
				t.Fatalf("Info = %q, %d, %v", u, r, ok)
			}
		})
	}
}

// A token lives ttl (etcd's default 5m) from its assignment, used or not.
func TestJWTExpiry(t *testing.T) {
	priv, pub := keyFiles(t, "p256")
	for _, tc := range []struct {
		ttl  string
		want time.Duration
	}{{"", 5 * time.Minute}, {",ttl=", 5 * time.Minute}, {",ttl=10s", 10 * time.Second}} {
		clock := testkit.NewFakeClock(t0)
		j := newJWT(t, "sign-method=ES256,pub-key="+pub+",priv-key="+priv+tc.ttl, clock)
		tok, err := j.Assign("bob", 1)
		if err != nil {
			t.Fatal(err)
		}
		clock.Advance(tc.want - time.Millisecond)
		if _, _, ok := j.Info(tok); !ok {
			t.Errorf("ttl %q: token invalid before it expires", tc.ttl)
		}
		clock.Advance(time.Millisecond)
		if _, _, ok := j.Info(tok); ok {
			t.Errorf("ttl %q: token valid at its exp", tc.ttl)
		}
	}
}

// A member given only the public key checks tokens but cannot issue them.
func TestJWTVerifyOnly(t *testing.T) {
	for _, tc := range []struct{ method, key string }{{"RS256", "rsa"}, {"ES256", "p256"}, {"EdDSA", "ed"}} {
		priv, pub := keyFiles(t, tc.key)
		clock := testkit.NewFakeClock(t0)
		issuer := newJWT(t, "sign-method="+tc.method+",priv-key="+priv, clock) // private key alone can do both
		checker := newJWT(t, "sign-method="+tc.method+",pub-key="+pub, clock)
		if _, err := checker.Assign("carol", 3); !errors.Is(err, authactor.ErrVerifyOnly) {
			t.Errorf("%s: verify-only Assign err = %v, want ErrVerifyOnly", tc.method, err)
		}
		tok, err := issuer.Assign("carol", 3)
		if err != nil {
			t.Fatal(err)
		}
		if u, r, ok := checker.Info(tok); !ok || u != "carol" || r != 3 {
			t.Errorf("%s: verify-only Info = %q, %d, %v", tc.method, u, r, ok)
		}
	}
}

func TestJWTOptionErrors(t *testing.T) {
	rsaPriv, rsaPub := keyFiles(t, "rsa")
	_, rsa2Pub := keyFiles(t, "rsa2")
	ecPriv, ecPub := keyFiles(t, "p256")
	_, ec2Pub := keyFiles(t, "p256b")
	edPriv, edPub := keyFiles(t, "ed")
	_, ed2Pub := keyFiles(t, "ed2")
	secret := secretFile(t, "s")
	empty := secretFile(t, "")
	garbage := secretFile(t, "not a pem file")
	missing := filepath.Join(t.TempDir(), "missing.pem")

	for _, tc := range []struct {
		opts string
		want error // nil: any error
	}{
		{"", authactor.ErrInvalidAuthOpts}, // sign-method is required
		{"priv-key=" + secret, authactor.ErrInvalidAuthOpts},
		{"sign-method=hs256,priv-key=" + secret, authactor.ErrInvalidAuthMethod},
		{"sign-method=XX256,priv-key=" + secret, authactor.ErrInvalidAuthOpts},
		{"sign-method=none,priv-key=" + secret, nil},
		{"sign-method", authactor.ErrInvalidAuthOpts},
		{"sign-method=HS256,priv-key=" + secret + ",", authactor.ErrInvalidAuthOpts},
		{"sign-method=HS256,priv-key=a=b", authactor.ErrInvalidAuthOpts},
		{"sign-method=HS256,sign-method=HS256,priv-key=" + secret, authactor.ErrInvalidAuthOpts},
		{"sign-method=HS256,ttl=5,priv-key=" + secret, authactor.ErrInvalidAuthOpts},
		{"sign-method=HS256,priv-key=" + missing, fs.ErrNotExist},
		{"sign-method=HS256,priv-key=" + secret + ",pub-key=" + missing, authactor.ErrInvalidAuthOpts},
		{"sign-method=HS256", authactor.ErrMissingKey},
		{"sign-method=HS256,pub-key=" + secret, authactor.ErrMissingKey},
		{"sign-method=HS256,priv-key=" + empty, authactor.ErrMissingKey},
		{"sign-method=RS256", authactor.ErrMissingKey},
		{"sign-method=RS256,priv-key=" + empty, authactor.ErrMissingKey},
		{"sign-method=ES256", authactor.ErrMissingKey},
		{"sign-method=EdDSA", authactor.ErrMissingKey},
		{"sign-method=RS256,priv-key=" + rsaPriv + ",pub-key=" + rsa2Pub, authactor.ErrKeyMismatch},
		{"sign-method=ES256,priv-key=" + ecPriv + ",pub-key=" + ec2Pub, authactor.ErrKeyMismatch},
		{"sign-method=EdDSA,priv-key=" + edPriv + ",pub-key=" + ed2Pub, authactor.ErrKeyMismatch},
		{"sign-method=RS256,priv-key=" + ecPriv, jwt.ErrNotRSAPrivateKey},
		{"sign-method=RS256,pub-key=" + ecPub, jwt.ErrNotRSAPublicKey},
		{"sign-method=ES256,priv-key=" + rsaPriv, jwt.ErrNotECPrivateKey},
		{"sign-method=EdDSA,pub-key=" + rsaPub, jwt.ErrNotEdPublicKey},
		{"sign-method=RS256,priv-key=" + garbage, jwt.ErrKeyMustBePEMEncoded},
		{"sign-method=ES256,pub-key=" + garbage, jwt.ErrKeyMustBePEMEncoded},
	} {
		j, err := authactor.NewJWTTokens(tc.opts, nil)
		if err == nil || (tc.want != nil && !errors.Is(err, tc.want)) {
			t.Errorf("NewJWTTokens(%q) = %v, %v; want %v", tc.opts, j, err, tc.want)
		}
	}

	// Accepted as etcd accepts them.
	for _, opts := range []string{
		"sign-method=HS256,priv-key=" + secret + ",color=blue",         // unknown options are ignored
		"sign-method=HS256,priv-key=" + secret + ",pub-key=" + garbage, // HMAC ignores pub-key
		"sign-method=RS256,priv-key=" + rsaPriv + ",pub-key=",          // empty value = absent
		"sign-method=ES256,priv-key=" + ecPriv + ",pub-key=" + ecPub,
		"sign-method=EdDSA,pub-key=" + edPub + ",priv-key=" + edPriv,
		"sign-method=HS256,ttl=-1s,priv-key=" + secret, // not range checked
	} {
		if _, err := authactor.NewJWTTokens(opts, nil); err != nil {
			t.Errorf("NewJWTTokens(%q): %v", opts, err)
		}
	}
}

// As in etcd, a key of the wrong curve for the method is only noticed when
// signing.
func TestJWTCurveMismatchFailsToSign(t *testing.T) {
	priv, _ := keyFiles(t, "p384")
	j := newJWT(t, "sign-method=ES256,priv-key="+priv, testkit.NewFakeClock(t0))
	if tok, err := j.Assign("dave", 1); err == nil {
		t.Fatalf("Assign = %q, want an error", tok)
	}
}

// sign makes a token with arbitrary claims, method and key.
func sign(t *testing.T, m jwt.SigningMethod, key any, claims jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(m, claims).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestJWTRejects(t *testing.T) {
	priv, pub := keyFiles(t, "rsa")
	clock := testkit.NewFakeClock(t0)
	j := newJWT(t, "sign-method=RS256,priv-key="+priv+",pub-key="+pub, clock)
	good, err := j.Assign("alice", 7)
	if err != nil {
		t.Fatal(err)
	}
	k, other := keys()["rsa"], keys()["rsa2"]
	pubPEM, err := os.ReadFile(pub)
	if err != nil {
		t.Fatal(err)
	}
	exp := t0.Add(time.Hour).Unix()
	claims := func(kv ...any) jwt.MapClaims {
		c := jwt.MapClaims{"username": "alice", "revision": 7, "exp": exp}
		for i := 0; i < len(kv); i += 2 {
			if kv[i+1] == nil {
				delete(c, kv[i].(string))
			} else {
				c[kv[i].(string)] = kv[i+1]
			}
		}
		return c
	}
	b64 := base64.RawURLEncoding.EncodeToString
	parts := strings.Split(good, ".")

	for name, tok := range map[string]string{
		"empty":     "",
		"garbage":   "not a token",
		"dots":      "..",
		"simple":    "ZzBbZYkCvPzCsEUY.17",
		"two parts": parts[0] + "." + parts[1],
		"bad b64":   parts[0] + ".!!!." + parts[2],
		"tampered": parts[0] + "." + b64([]byte(`{"username":"root","revision":7,"exp":`+
			jsonInt(exp)+`}`)) + "." + parts[2],
		"cut signature":       good[:len(good)-4],
		"alg none, hand made": b64([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + parts[1] + ".",
		"alg none":            sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, claims()),
		"other key":           sign(t, jwt.SigningMethodRS256, other, claims()),
		"same key, RS512":     sign(t, jwt.SigningMethodRS512, k, claims()),
		"same key, PS256":     sign(t, jwt.SigningMethodPS256, k, claims()),
		"HS256 with pub PEM":  sign(t, jwt.SigningMethodHS256, pubPEM, claims()), // key confusion
		"no username":         sign(t, jwt.SigningMethodRS256, k, claims("username", nil)),
		"no revision":         sign(t, jwt.SigningMethodRS256, k, claims("revision", nil)),
		"username not string": sign(t, jwt.SigningMethodRS256, k, claims("username", 12)),
		"revision string":     sign(t, jwt.SigningMethodRS256, k, claims("revision", "7")),
		"revision negative":   sign(t, jwt.SigningMethodRS256, k, claims("revision", -1)),
		"revision too big":    sign(t, jwt.SigningMethodRS256, k, claims("revision", 1e20)),
		"expired":             sign(t, jwt.SigningMethodRS256, k, claims("exp", t0.Unix())),
		"exp not a number":    sign(t, jwt.SigningMethodRS256, k, claims("exp", "tomorrow")),
		"not yet valid":       sign(t, jwt.SigningMethodRS256, k, claims("nbf", t0.Add(time.Minute).Unix())),
	} {
		if u, r, ok := j.Info(tok); ok {
			t.Errorf("%s: Info(%q) = %q, %d, true", name, tok, u, r)
		}
	}

	// Accepted as etcd accepts them: exp is optional, other claims are
	// ignored, a fractional revision is truncated.
	for name, c := range map[string]jwt.MapClaims{
		"no exp":      claims("exp", nil),
		"extra claim": claims("role", "root"),
		"fraction":    claims("revision", 7.5),
	} {
		if u, r, ok := j.Info(sign(t, jwt.SigningMethodRS256, k, c)); !ok || u != "alice" || r != 7 {
			t.Errorf("%s: Info = %q, %d, %v", name, u, r, ok)
		}
	}

	clock.Advance(5 * time.Minute)
	if _, _, ok := j.Info(good); ok {
		t.Error("token still valid at its exp")
	}
}

func jsonInt(n int64) string {
	b, _ := json.Marshal(n)
	return string(b)
}

// A token made for an HMAC member does not pass another secret's member,
// and the secret is the file's exact bytes.
func TestJWTHMACSecret(t *testing.T) {
	clock := testkit.NewFakeClock(t0)
	a := newJWT(t, "sign-method=HS256,priv-key="+secretFile(t, "secret\n"), clock)
	b := newJWT(t, "sign-method=HS256,priv-key="+secretFile(t, "secret"), clock)
	tok, err := a.Assign("erin", 5)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, ok := b.Info(tok); ok {
		t.Error("token accepted by a member with another secret")
	}
	c := jwt.MapClaims{"username": "erin", "revision": 5}
	if _, _, ok := a.Info(sign(t, jwt.SigningMethodHS256, []byte("secret\n"), c)); !ok {
		t.Error("token signed with the file's bytes rejected")
	}
	if _, _, ok := a.Info(sign(t, jwt.SigningMethodHS512, []byte("secret\n"), c)); ok {
		t.Error("HS512 token accepted by an HS256 member")
	}
}

func TestJWTConcurrent(t *testing.T) {
	priv, _ := keyFiles(t, "ed")
	j := newJWT(t, "sign-method=EdDSA,priv-key="+priv, testkit.NewFakeClock(t0))
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for r := range uint64(50) {
				tok, err := j.Assign("u", r)
				if err != nil {
					t.Error(err)
					return
				}
				if u, got, ok := j.Info(tok); !ok || u != "u" || got != r {
					t.Errorf("goroutine %d: Info = %q, %d, %v", i, u, got, ok)
				}
			}
		})
	}
	wg.Wait()
}
