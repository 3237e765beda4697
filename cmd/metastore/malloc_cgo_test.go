//go:build cgo

package main

import (
	"os"
	"testing"
)

// The C allocator here is glibc's (Debian): the cap must have been taken
// at load, or the member runs with up to eight arenas a core holding
// pebble's freed blocks.
func TestMallocArenasCapped(t *testing.T) {
	if os.Getenv("MALLOC_ARENA_MAX") != "" {
		t.Skip("MALLOC_ARENA_MAX is set: the operator's cap stands")
	}
	if got := mallocArenas(); got != 2 {
		t.Fatalf("malloc arenas capped at %d, want 2", got)
	}
}
