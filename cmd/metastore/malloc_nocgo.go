//go:build !cgo

package main

// mallocArenas: without cgo pebble allocates from the Go heap, and there
// are no C allocator arenas to cap (see malloc_cgo.go).
func mallocArenas() int { return 0 }
