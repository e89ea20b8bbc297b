//go:build unix

package filestore

import (
	"os"

	"github.com/google/renameio/v2"
)

// writeFile replaces path with data atomically: data goes to a temporary
// file in dir (0600 whatever the umask), which is flushed to disk and
// renamed over path; dir is then flushed so that the rename itself
// survives a crash.
func writeFile(dir, path string, data []byte) error {
	t, err := renameio.NewPendingFile(path, renameio.WithTempDir(dir), renameio.WithStaticPermissions(0o600))
	if err != nil {
		return err
	}
	defer t.Cleanup()
	if _, err := t.Write(data); err != nil {
		return err
	}
	if err := t.CloseAtomicallyReplace(); err != nil {
		return err
	}
	return syncDir(dir)
}

// syncDir flushes dir's entries to disk.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
