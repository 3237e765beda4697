package authactor

import (
	"sync/atomic"

	"github.com/asynkron/protoactor-go/actor"
	"go.uber.org/zap"
)

// applyGuard is SimpleTokens' outermost receive middleware. The store
// hands it each apply batch's token changes and the answer to the batch's
// clients (Apply.Then); a panic while handling them would drop the
// message: the clients never answered, a deleted user's or an old
// password's tokens still valid on this member.
//
// Invariant, whatever panics while an Apply is handled (its ops, Then, or
// anything on the receive path): Then runs exactly once, and before it
// runs the table holds no token the batch's ops would have ended. If the
// batch's table was published, it is in effect as a whole (update swaps
// it in at once); if not, failSafe drops every token of the users the ops
// name (all tokens for DropAll), the batch's new tokens included: their
// clients authenticate again. The panic then goes on to the supervisor,
// which counts it and restarts the actor (the table outlives restarts).
func applyGuard(table *atomic.Pointer[tokenTable], lg *zap.Logger) actor.ReceiverMiddleware {
	return func(next actor.ReceiverFunc) actor.ReceiverFunc {
		return func(ctx actor.ReceiverContext, env *actor.MessageEnvelope) {
			m, ok := env.Message.(*Apply)
			if !ok {
				next(ctx, env)
				return
			}
			ran := false
			once := func() {
				if !ran {
					ran = true
					if m.Then != nil {
						m.Then()
					}
				}
			}
			before := table.Load()
			defer func() {
				p := recover()
				if p == nil {
					return
				}
				published := table.Load() != before
				if !published {
					failSafe(table, m.Ops)
				}
				lg.Error("applying token changes failed; answering the batch's clients",
					zap.Any("panic", p), zap.Bool("changes-in-effect", published), zap.Stack("stack"))
				once()
				panic(p)
			}()
			next(ctx, &actor.MessageEnvelope{Header: env.Header, Message: &Apply{Ops: m.Ops, Then: once}, Sender: env.Sender})
		}
	}
}

// failSafe publishes the table without any token of the users ops name,
// or an empty one when ops drop all (or even that fails).
func failSafe(table *atomic.Pointer[tokenTable], ops []TokenOp) {
	defer func() {
		if recover() != nil {
			table.Store(&tokenTable{})
		}
	}()
	users := make(map[string]bool, len(ops))
	for _, op := range ops {
		if op.Kind == DropAll {
			table.Store(&tokenTable{})
			return
		}
		users[op.User] = true
	}
	old := *table.Load()
	t := make(tokenTable, len(old))
	for tok, e := range old {
		if !users[e.user] {
			t[tok] = e
		}
	}
	table.Store(&t)
}
