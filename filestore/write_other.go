//go:build !unix

package filestore

import (
	"os"
	"path/filepath"
)

// writeFile replaces path with data: data goes to a temporary file in dir,
// which is flushed to disk and renamed over path (MoveFileEx with
// MOVEFILE_REPLACE_EXISTING on Windows). renameio, used on Unix, has no
// Windows version.
func writeFile(dir, path string, data []byte) (err error) {
	t, err := os.CreateTemp(dir, "."+filepath.Base(path)+"*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			t.Close()
			os.Remove(t.Name())
		}
	}()
	if _, err := t.Write(data); err != nil {
		return err
	}
	if err := t.Sync(); err != nil {
		return err
	}
	if err := t.Close(); err != nil {
		return err
	}
	return os.Rename(t.Name(), path)
}

// syncDir does nothing: Windows cannot flush a folder, and NTFS journals
// renames.
func syncDir(string) error { return nil }
