package filestore

import (
	"fmt"
	"io/fs"
	"os"
)

// PermissionError reports a folder or file of the store that another user
// could read or change, that belongs to another user, or that is a link:
// the store refuses it rather than leak the tokens it holds or trust tokens
// someone else could have put there. [errors.Is](err, [fs.ErrPermission])
// holds for it.
type PermissionError struct {
	// Path is the folder or file refused.
	Path string
	// Mode is its mode.
	Mode fs.FileMode
	// Reason says what is wrong with it.
	Reason string
}

func (e *PermissionError) Error() string {
	return fmt.Sprintf("filestore: refusing %s (mode %s): %s; the folder must be 0700 and the files 0600, both the user's own", e.Path, e.Mode, e.Reason)
}

// Is makes [errors.Is](err, [fs.ErrPermission]) hold.
func (e *PermissionError) Is(target error) bool { return target == fs.ErrPermission }

// checkDir makes sure the store's folder is a folder of the user's that no
// one else can enter, list or change.
func checkDir(dir string) error {
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("filestore: %w", err)
	}
	if !fi.IsDir() {
		return &PermissionError{Path: dir, Mode: fi.Mode(), Reason: "not a folder"}
	}
	return checkPrivate(dir, fi)
}
