package authactor

import (
	"crypto/rand"
	"math/big"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"go.uber.org/zap"

	"github.com/metastore/metastore/actors"
)

// SimpleTokens is the actor that owns etcd's "simple" tokens
// (--auth-token=simple): random strings mapped to a user, valid until
// --auth-token-ttl passes without them being used. They live in memory
// only, as etcd's: after a restart clients authenticate again.
//
// Assigning and dropping go through its mailbox (Apply, sent by the store); checking a token does
// not: the actor publishes an immutable table (copy-on-write, rebuilt only
// when tokens are issued or dropped), and a use refreshes the token's
// deadline with an atomic store, so request paths on every core check
// tokens without a mailbox round trip.
type SimpleTokens struct {
	cfg   TokensConfig
	table *atomic.Pointer[tokenTable]
	ttl   *atomic.Int64 // the TTL now (SetTTL); shared with the TokenView, outlives restarts
	stop  func()
}

// TokensConfig is what SimpleTokens needs.
type TokensConfig struct {
	TTL    time.Duration // --auth-token-ttl (etcd: 300 s)
	Clock  actors.Clock
	Logger *zap.Logger
}

// Apply carries the token changes of one store apply batch, in log order,
// and Then, run once they are in effect (the store answers the batch's
// clients there): a client told it is authenticated can use its token at
// once, and one told a password changed cannot use the old tokens any more.
//
// Tokens are assigned at apply, from the raft entry, so every member knows
// every token, as etcd's simple tokens are.
type Apply struct {
	Ops  []TokenOp
	Then func()
}

// TokenOp is one token change.
type TokenOp struct {
	Kind  TokenOpKind
	Token string // AssignToken
	User  string // AssignToken, DropUser
}

type TokenOpKind int

const (
	AssignToken TokenOpKind = iota // Token now names User
	DropUser                       // every token of User ends (deleted, new password)
	DropAll                        // every token ends (auth disabled)
)

type sweep struct{}

type tokenTable map[string]*tokenEntry

type tokenEntry struct {
	user     string
	deadline atomic.Int64 // unix nanoseconds
}

// TokenView checks tokens for request paths; it reads what the actor
// publishes.
type TokenView struct {
	table *atomic.Pointer[tokenTable]
	ttl   *atomic.Int64
	clock actors.Clock
}

// User returns the user a token was issued to, if it is known and has been
// used within the TTL; a successful check counts as a use.
func (v *TokenView) User(token string) (string, bool) {
	e := (*v.table.Load())[token]
	if e == nil {
		return "", false
	}
	now := v.clock.Now()
	if now.UnixNano() >= e.deadline.Load() {
		return "", false
	}
	e.deadline.Store(now.Add(time.Duration(v.ttl.Load())).UnixNano())
	return e.user, true
}

// NewSimpleTokens returns the actor's props and the view that checks its
// tokens. The table outlives restarts of the actor, so tokens stay valid.
func NewSimpleTokens(cfg TokensConfig) (*actor.Props, *TokenView) {
	if cfg.TTL <= 0 {
		cfg.TTL = DefaultTokenTTL
	}
	if cfg.Clock == nil {
		cfg.Clock = actors.RealClock
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	table := new(atomic.Pointer[tokenTable])
	table.Store(&tokenTable{})
	ttl := new(atomic.Int64)
	ttl.Store(int64(cfg.TTL))
	props := actor.PropsFromProducer(func() actor.Actor { return &SimpleTokens{cfg: cfg, table: table, ttl: ttl} },
		actor.WithReceiverMiddleware(applyGuard(table, cfg.Logger)), // first: outermost (tokenfail.go)
		actors.KeepStopped())
	return props, &TokenView{table: table, ttl: ttl, clock: cfg.Clock}
}

func (s *SimpleTokens) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Started:
		s.armSweep(ctx)
	case *actor.Stopping, *actor.Restarting:
		if s.stop != nil {
			s.stop()
		}
	case *SetTTL:
		actors.Reply(m.Reply, s.setTTL(ctx, m))
	case *Apply:
		s.update(func(t tokenTable) {
			for _, op := range m.Ops {
				s.apply(t, op)
			}
		})
		if m.Then != nil {
			m.Then()
		}
	case sweep:
		now := s.cfg.Clock.Now().UnixNano()
		s.update(func(t tokenTable) {
			for tok, e := range t {
				if now >= e.deadline.Load() {
					delete(t, tok)
				}
			}
		})
	}
}

func (s *SimpleTokens) apply(t tokenTable, op TokenOp) {
	switch op.Kind {
	case AssignToken:
		e := &tokenEntry{user: op.User}
		e.deadline.Store(s.cfg.Clock.Now().Add(time.Duration(s.ttl.Load())).UnixNano())
		t[op.Token] = e
	case DropUser:
		for tok, e := range t {
			if e.user == op.User {
				delete(t, tok)
			}
		}
	case DropAll:
		clear(t)
	}
}

// NewTokenPrefix is the random part of a simple token, made by the member
// that proposes an Authenticate (etcd's shape: 16 letters; the entry's raft
// index follows after a dot).
func NewTokenPrefix() string {
	const letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
	b := make([]byte, 16)
	for i := range b {
		n, err := rand.Int(rand.Reader, big.NewInt(int64(len(letters))))
		if err != nil {
			panic(err)
		}
		b[i] = letters[n.Int64()]
	}
	return string(b)
}

// update publishes a changed copy of the table.
func (s *SimpleTokens) update(change func(tokenTable)) {
	old := *s.table.Load()
	t := make(tokenTable, len(old)+1)
	for k, v := range old {
		t[k] = v
	}
	change(t)
	s.table.Store(&t)
}
