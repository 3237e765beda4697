package authactor_test

import (
	"testing"

	"go.etcd.io/etcd/api/v3/authpb"

	"github.com/metastore/metastore/authactor"
)

func perm(typ authpb.Permission_Type, key, end string) *authpb.Permission {
	p := &authpb.Permission{PermType: typ, Key: []byte(key)}
	if end != "" {
		p.RangeEnd = []byte(end)
	}
	return p
}

// The permission matrix: read/write/readwrite x key/range/prefix/from-key,
// requests for single keys and for ranges, as etcd's range permission
// cache answers them.
func TestPermissionMatrix(t *testing.T) {
	roles := map[string]*authpb.Role{
		"key":     {Name: []byte("key"), KeyPermission: []*authpb.Permission{perm(authpb.Permission_READ, "k", "")}},
		"range":   {Name: []byte("range"), KeyPermission: []*authpb.Permission{perm(authpb.Permission_WRITE, "a", "c")}},
		"prefix":  {Name: []byte("prefix"), KeyPermission: []*authpb.Permission{perm(authpb.Permission_READWRITE, "p/", "p0")}},
		"fromkey": {Name: []byte("fromkey"), KeyPermission: []*authpb.Permission{perm(authpb.Permission_READ, "x", "\x00")}},
		// Two touching ranges cover their union.
		"pieces": {Name: []byte("pieces"), KeyPermission: []*authpb.Permission{
			perm(authpb.Permission_READ, "m", "n"), perm(authpb.Permission_READ, "n", "o")}},
	}
	users := []*authpb.User{
		{Name: []byte("k"), Roles: []string{"key"}},
		{Name: []byte("r"), Roles: []string{"range"}},
		{Name: []byte("p"), Roles: []string{"prefix"}},
		{Name: []byte("f"), Roles: []string{"fromkey"}},
		{Name: []byte("pc"), Roles: []string{"pieces", "missing-role"}},
		{Name: []byte("root"), Roles: []string{"root"}},
		{Name: []byte("none")},
	}
	p := authactor.NewPermissions(users, roles)
	cases := []struct {
		user, key, end string
		write, want    bool
	}{
		{"k", "k", "", false, true},
		{"k", "k", "", true, false},   // read only
		{"k", "k0", "", false, false}, // another key
		{"k", "k", "k\x00", false, true},
		{"k", "k", "l", false, false}, // more than the key
		{"r", "a", "", true, true},
		{"r", "b", "", true, true},
		{"r", "c", "", true, false}, // end excluded
		{"r", "a", "c", true, true},
		{"r", "a", "d", true, false},
		{"r", "b", "", false, false}, // write only
		{"p", "p/x", "", false, true},
		{"p", "p/x", "", true, true},
		{"p", "p/", "p0", false, true},
		{"p", "p", "", false, false},
		{"p", "p/", "\x00", false, false}, // from-key is more than the prefix
		{"f", "x", "\x00", false, true},
		{"f", "y", "\x00", false, true},
		{"f", "zzz", "", false, true},
		{"f", "w", "\x00", false, false},
		{"f", "x", "", true, false},
		{"pc", "m", "o", false, true},
		{"pc", "m", "o\x00", false, false},
		{"root", "anything", "\x00", true, true},
		{"none", "k", "", false, false},
		{"nobody", "k", "", false, false},
	}
	for _, c := range cases {
		if got := p.Permitted(c.user, []byte(c.key), []byte(c.end), c.write); got != c.want {
			t.Errorf("%s write=%v [%q, %q): %v, want %v", c.user, c.write, c.key, c.end, got, c.want)
		}
	}
	if !p.IsRoot("root") || p.IsRoot("k") || p.IsRoot("nobody") {
		t.Error("IsRoot")
	}
}

// Overlapping and nested grants merge; the result does not depend on the
// order roles list them.
func TestPermissionsMergeOverlaps(t *testing.T) {
	grants := [][2]string{{"b", "d"}, {"a", "c"}, {"c", "c1"}, {"e", "f"}, {"a", "b"}}
	var perms []*authpb.Permission
	for _, g := range grants {
		perms = append(perms, perm(authpb.Permission_READ, g[0], g[1]))
	}
	p := authactor.NewPermissions(
		[]*authpb.User{{Name: []byte("u"), Roles: []string{"r"}}},
		map[string]*authpb.Role{"r": {Name: []byte("r"), KeyPermission: perms}})
	for _, c := range []struct {
		key, end string
		want     bool
	}{{"a", "d", true}, {"a", "e", false}, {"e", "f", true}, {"d", "e", false}, {"c0", "", true}} {
		if got := p.Permitted("u", []byte(c.key), []byte(c.end), false); got != c.want {
			t.Errorf("[%q, %q): %v, want %v", c.key, c.end, got, c.want)
		}
	}
}
