//go:build cgo

package main

/*
#include <malloc.h>
#include <stdlib.h>
#include <string.h>

#define MALLOC_ARENAS 2

static int arenas_capped;

// A constructor runs when the process is loaded, before the Go runtime
// starts a thread: glibc ties a thread to the arena of its first
// allocation, so a cap set later leaves the arenas made by then in use.
__attribute__((constructor)) static void cap_arenas(void) {
#ifdef M_ARENA_MAX
	const char *tunables = getenv("GLIBC_TUNABLES");
	if (getenv("MALLOC_ARENA_MAX") == NULL && (tunables == NULL || strstr(tunables, "arena_max") == NULL) &&
		mallopt(M_ARENA_MAX, MALLOC_ARENAS) == 1) {
		arenas_capped = MALLOC_ARENAS;
	}
#endif
}

static int malloc_arenas_capped(void) { return arenas_capped; }
*/
import "C"

// mallocArenas is the cap the process started with on glibc's malloc
// arenas, which hold what pebble allocates in C (its block cache's blocks
// and its memtables); 0 when it has none (an operator's MALLOC_ARENA_MAX,
// or glibc.malloc.arena_max in GLIBC_TUNABLES, stands; other C libraries
// have no arenas).
//
// glibc gives each thread its own arena on its first allocation, up to
// eight per core, and the Go runtime runs pebble's allocations on
// whichever of its threads is free: a block freed into one arena is not
// reused by the next allocation in another, and each arena keeps its free
// memory. Two arenas took about a twelfth off the member's resident set
// under `make bench`'s row q (docs/benchmarks.md, session 16); pebble
// allocates on block cache misses and memtable rotations, rarely enough
// that two arena locks do not contend.
func mallocArenas() int { return int(C.malloc_arenas_capped()) }
