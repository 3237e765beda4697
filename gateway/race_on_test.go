//go:build race

package gateway

// raceEnabled: the race detector changes what the heap holds (sync.Pool
// drops items at random, instrumented code allocates more), so heap bounds
// are looser under it.
const raceEnabled = true
