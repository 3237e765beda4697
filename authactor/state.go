package authactor

import (
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
)

// State is the auth state every request is checked against: whether auth
// is on, the auth revision and everyone's merged permissions. The store
// builds one from its replicated user and role records whenever they change
// and publishes it with the batch that changed them, so a check never sees
// permissions older than an acknowledged change. Immutable once built.
type State struct {
	Enabled bool
	Rev     uint64
	Perms   *Permissions
}

// Info is who a request comes from (etcd's AuthInfo): the user its token
// names and the auth revision the token was checked at. The zero Info is
// an anonymous request.
type Info struct {
	User string
	Rev  uint64
}

// CheckOp is etcd's permission check for reading (write false) or writing
// the keys of a request, with the same errors in the same order: no user,
// a token checked at an older auth revision, an unknown user, a user
// without the permission.
func (s *State) CheckOp(ai Info, key, end []byte, write bool) error {
	switch {
	case !s.Enabled:
		return nil
	case ai.Rev == 0:
		return rpctypes.ErrGRPCUserEmpty
	case ai.Rev < s.Rev:
		return rpctypes.ErrGRPCAuthOldRevision
	case !s.Perms.Permitted(ai.User, key, end, write):
		return rpctypes.ErrGRPCPermissionDenied
	}
	return nil
}

// CheckUser is etcd's requireAuthInfo: with auth on, a request must come
// from an authenticated user.
func (s *State) CheckUser(ai Info) error {
	if s.Enabled && ai.User == "" {
		return rpctypes.ErrGRPCUserEmpty
	}
	return nil
}

// CheckAdmin is etcd's check for the requests only a root-role user may
// make.
func (s *State) CheckAdmin(ai Info) error {
	switch {
	case !s.Enabled:
		return nil
	case ai.User == "":
		return rpctypes.ErrGRPCUserEmpty
	case !s.Perms.Known(ai.User):
		return rpctypes.ErrGRPCUserNotFound
	case !s.Perms.IsRoot(ai.User):
		return rpctypes.ErrGRPCPermissionDenied
	}
	return nil
}

// LeaseKeys lists the keys attached to a lease (none for an unknown one),
// or fails to read them: the check then fails with that error.
type LeaseKeys func(id int64) ([][]byte, error)

// CheckLeaseWrite is etcd's check before a put with a lease, a lease
// revoke or a renewal: a non-root user needs write permission on every key
// attached.
func (s *State) CheckLeaseWrite(ai Info, id int64, keys LeaseKeys) error {
	return s.checkLeaseKeys(ai, id, keys, true)
}

// CheckLeaseRead is etcd's check before showing a lease's keys: a non-root
// user needs read permission on each of them.
func (s *State) CheckLeaseRead(ai Info, id int64, keys LeaseKeys) error {
	return s.checkLeaseKeys(ai, id, keys, false)
}

func (s *State) checkLeaseKeys(ai Info, id int64, keys LeaseKeys, write bool) error {
	if !s.Enabled || id == 0 || s.CheckAdmin(ai) == nil {
		return nil
	}
	ks, err := keys(id)
	if err != nil {
		return err
	}
	for _, k := range ks {
		if err := s.CheckOp(ai, k, nil, write); err != nil {
			return err
		}
	}
	return nil
}

// CheckPut is etcd's check of a put: write on the key, write on the keys
// of its lease, read on the key when the previous value is asked for.
func (s *State) CheckPut(ai Info, r *pb.PutRequest, keys LeaseKeys) error {
	if err := s.CheckOp(ai, r.Key, nil, true); err != nil {
		return err
	}
	if err := s.CheckLeaseWrite(ai, r.Lease, keys); err != nil {
		return err
	}
	if r.PrevKv {
		return s.CheckOp(ai, r.Key, nil, false)
	}
	return nil
}

// CheckDelete is etcd's check of a delete: write on the range, and read on
// it when the deleted values are asked for.
func (s *State) CheckDelete(ai Info, r *pb.DeleteRangeRequest) error {
	if err := s.CheckOp(ai, r.Key, r.RangeEnd, true); err != nil {
		return err
	}
	if r.PrevKv {
		return s.CheckOp(ai, r.Key, r.RangeEnd, false)
	}
	return nil
}

// CheckTxn is etcd's check of a txn: read on every compare, and every
// operation of both branches (nested txns included) as if it ran, whichever
// branch the compares will pick.
func (s *State) CheckTxn(ai Info, r *pb.TxnRequest, keys LeaseKeys) error {
	if !s.Enabled {
		return nil
	}
	for _, c := range r.Compare {
		if err := s.CheckOp(ai, c.Key, c.RangeEnd, false); err != nil {
			return err
		}
	}
	for _, ops := range [][]*pb.RequestOp{r.Success, r.Failure} {
		for _, op := range ops {
			var err error
			switch {
			case op.GetRequestRange() != nil:
				rr := op.GetRequestRange()
				err = s.CheckOp(ai, rr.Key, rr.RangeEnd, false)
			case op.GetRequestPut() != nil:
				err = s.CheckPut(ai, op.GetRequestPut(), keys)
			case op.GetRequestDeleteRange() != nil:
				err = s.CheckDelete(ai, op.GetRequestDeleteRange())
			case op.GetRequestTxn() != nil:
				err = s.CheckTxn(ai, op.GetRequestTxn(), keys)
			}
			if err != nil {
				return err
			}
		}
	}
	return nil
}
