package storeactor

// SetAfterCompactStep sets the hook run after each physical compaction
// step is published (nil: none).
func SetAfterCompactStep(f func()) { afterCompactStep = f }
