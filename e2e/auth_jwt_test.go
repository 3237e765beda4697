package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// writeECKeys writes a fresh P-256 key pair as PEM files in dir.
func writeECKeys(t *testing.T, dir, name string) (key *ecdsa.PrivateKey, priv, pub string) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	privDER, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	pubDER, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	priv, pub = filepath.Join(dir, name+".key"), filepath.Join(dir, name+".pub")
	for path, blk := range map[string]*pem.Block{priv: {Type: "PRIVATE KEY", Bytes: privDER}, pub: {Type: "PUBLIC KEY", Bytes: pubDER}} {
		if err := os.WriteFile(path, pem.EncodeToMemory(blk), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return k, priv, pub
}

// TestAuthJWT runs both servers with --auth-token=jwt (ES256, keys made by
// the test): logins return JWTs carrying the user and auth revision, they
// work for the user's keys only, an auth change makes them old, and forged
// tokens (alg=none, another key, a tampered payload) are refused with the
// same errors as etcd's.
func TestAuthJWT(t *testing.T) {
	dir := t.TempDir()
	_, priv, pub := writeECKeys(t, dir, "jwt")
	otherKey, _, _ := writeECKeys(t, dir, "other")
	flag := "--auth-token=jwt,pub-key=" + pub + ",priv-key=" + priv + ",sign-method=ES256,ttl=10m"
	ms := StartMetaStore(t, WithFlags(flag, "--bcrypt-cost=4"))
	ref := StartEtcd(t, WithFlags(flag, "--bcrypt-cost=4"))

	for _, srv := range []*Server{ms, ref} {
		for _, args := range [][]string{
			{"user", "add", "root:rootpw"}, {"user", "grant-role", "root", "root"},
			{"user", "add", "alice:alicepw"}, {"role", "add", "ra"},
			{"role", "grant-permission", "ra", "readwrite", "--prefix", "a/"},
			{"user", "grant-role", "alice", "ra"}, {"auth", "enable"},
		} {
			if out, errOut, err := Etcdctl(t, srv.Endpoint(), args...); err != nil {
				t.Fatalf("%s %v: %v %s%s", srv.Name, args, err, out, errOut)
			}
		}
	}

	// outcome runs one request with a raw token and describes the result.
	outcome := func(srv *Server, token string, put bool, key string) string {
		cli := srv.Client(t)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if token != "" {
			ctx = metadata.AppendToOutgoingContext(ctx, rpctypes.TokenFieldNameGRPC, token)
		}
		kv := pb.NewKVClient(cli.ActiveConnection())
		var err error
		if put {
			_, err = kv.Put(ctx, &pb.PutRequest{Key: []byte(key), Value: []byte("v")})
		} else {
			_, err = kv.Range(ctx, &pb.RangeRequest{Key: []byte(key)})
		}
		if err == nil {
			return "ok"
		}
		return status.Code(err).String() + ": " + rpctypes.ErrorDesc(err)
	}
	login := func(srv *Server, user, pw string) string {
		cli := srv.Client(t)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		resp, err := pb.NewAuthClient(cli.ActiveConnection()).Authenticate(ctx, &pb.AuthenticateRequest{Name: user, Password: pw})
		if err != nil {
			t.Fatalf("%s: login %s: %v", srv.Name, user, err)
		}
		return resp.Token
	}
	// claims decodes a JWT's payload.
	claims := func(tok string) map[string]any {
		parts := strings.Split(tok, ".")
		if len(parts) != 3 {
			t.Fatalf("not a JWT: %q", tok)
		}
		raw, err := base64.RawURLEncoding.DecodeString(parts[1])
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := json.Unmarshal(raw, &m); err != nil {
			t.Fatal(err)
		}
		return m
	}
	// forge builds tokens an attacker could: alg=none, signed with another
	// key, and the real token with its payload swapped for root's.
	forge := func(real string) map[string]string {
		parts := strings.Split(real, ".")
		c := claims(real)
		c["username"] = "root"
		payload, _ := json.Marshal(c)
		p := base64.RawURLEncoding.EncodeToString(payload)
		none := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`))
		return map[string]string{
			"alg=none":  none + "." + p + ".",
			"tampered":  parts[0] + "." + p + "." + parts[2],
			"garbage":   "not.a.jwt",
			"other key": signES256(t, otherKey, c),
		}
	}

	for _, srv := range []*Server{ms, ref} {
		tok := login(srv, "alice", "alicepw")
		c := claims(tok)
		if c["username"] != "alice" || c["revision"] == nil || c["exp"] == nil {
			t.Fatalf("%s: claims %v", srv.Name, c)
		}
	}
	msTok, refTok := login(ms, "alice", "alicepw"), login(ref, "alice", "alicepw")
	cases := []struct {
		name string
		put  bool
		key  string
	}{{"read own", false, "a/1"}, {"write own", true, "a/1"}, {"read other", false, "b"}, {"write other", true, "b"}}
	for _, c := range cases {
		if m, e := outcome(ms, msTok, c.put, c.key), outcome(ref, refTok, c.put, c.key); m != e {
			t.Errorf("%s: metastore %q, etcd %q", c.name, m, e)
		}
	}
	msForged, refForged := forge(msTok), forge(refTok)
	for name := range msForged {
		if m, e := outcome(ms, msForged[name], true, "z"), outcome(ref, refForged[name], true, "z"); m != e || m == "ok" {
			t.Errorf("forged %s: metastore %q, etcd %q", name, m, e)
		}
	}
	// Both servers hold the same key: a JWT is stateless, so etcd's token
	// works on MetaStore (as it would on another etcd member).
	if m := outcome(ms, refTok, false, "a/1"); m != "ok" {
		t.Errorf("etcd's token on metastore: %q", m)
	}
	// An auth change makes outstanding JWTs old, on both.
	for _, srv := range []*Server{ms, ref} {
		if out, errOut, err := Etcdctl(t, srv.Endpoint(), "--user=root:rootpw", "role", "add", "other"); err != nil {
			t.Fatalf("%s: %v %s%s", srv.Name, err, out, errOut)
		}
	}
	if m, e := outcome(ms, msTok, false, "a/1"), outcome(ref, refTok, false, "a/1"); m != e || m == "ok" {
		t.Errorf("old token after an auth change: metastore %q, etcd %q", m, e)
	}
	// clientv3 with a user logs in again by itself and goes on.
	for _, srv := range []*Server{ms, ref} {
		cli, err := clientv3.New(clientv3.Config{Endpoints: []string{srv.Endpoint()}, Username: "alice", Password: "alicepw",
			DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, err = cli.Put(ctx, "a/2", "v")
		cancel()
		cli.Close()
		if err != nil {
			t.Errorf("%s: clientv3 put as alice: %v", srv.Name, err)
		}
	}
}

// signES256 signs claims with key: a well-formed token from a key the
// servers do not trust.
func signES256(t *testing.T, key *ecdsa.PrivateKey, c map[string]any) string {
	t.Helper()
	tok, err := jwt.NewWithClaims(jwt.SigningMethodES256, jwt.MapClaims(c)).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}
