package storeactor

// SetImportChunkBytes makes Importer chunks hold at most n bytes, until
// the returned func restores the default.
func SetImportChunkBytes(n int) (restore func()) {
	old := importChunkBytes
	importChunkBytes = n
	return func() { importChunkBytes = old }
}
