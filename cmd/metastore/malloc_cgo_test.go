//go:build cgo

package main

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// The C allocator here is glibc's (Debian): the cap must have been taken
// at load, or the member runs with up to eight arenas a core holding
// pebble's freed blocks; an operator's own cap (MALLOC_ARENA_MAX, or
// glibc.malloc.arena_max in GLIBC_TUNABLES) must be left alone. The test
// binary is loaded with the environment it is given, so the operator's
// caps are checked in copies of it started with them.
func TestMallocArenasCapped(t *testing.T) {
	want := 2
	if os.Getenv("MALLOC_ARENA_MAX") != "" || strings.Contains(os.Getenv("GLIBC_TUNABLES"), "arena_max") {
		want = 0
	}
	if got := mallocArenas(); got != want {
		t.Fatalf("malloc arenas capped at %d, want %d", got, want)
	}
	if os.Getenv("METASTORE_MALLOC_CHILD") != "" {
		return
	}
	for _, env := range []string{"MALLOC_ARENA_MAX=4", "GLIBC_TUNABLES=glibc.malloc.arena_max=3"} {
		cmd := exec.Command(os.Args[0], "-test.run=^TestMallocArenasCapped$", "-test.count=1")
		cmd.Env = append(os.Environ(), "METASTORE_MALLOC_CHILD=1", env)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("with %s: %v\n%s", env, err, out)
		}
	}
}
