// Package durabledir creates and syncs directories on a vfs.FS so that
// a power loss cannot take back the entries naming them: a file synced
// into a directory whose own entry in its parent was never synced can
// vanish with the directory.
package durabledir

import (
	"errors"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// Create makes dir and its missing parents, and syncs the parent of each
// directory it made.
func Create(fs vfs.FS, dir string) error {
	var made []string // missing, deepest first
	for d := dir; ; d = fs.PathDir(d) {
		if _, err := fs.Stat(d); err == nil {
			break
		}
		made = append(made, d)
		if fs.PathDir(d) == d {
			break
		}
	}
	if err := fs.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	for i := len(made) - 1; i >= 0; i-- {
		if err := Sync(fs, fs.PathDir(made[i])); err != nil {
			return err
		}
	}
	return nil
}

// Sync makes dir's entries (files created, renamed or removed in it)
// durable.
func Sync(fs vfs.FS, dir string) error {
	d, err := fs.OpenDir(dir)
	if err != nil {
		return err
	}
	return errors.Join(d.Sync(), d.Close())
}
