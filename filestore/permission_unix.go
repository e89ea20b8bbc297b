//go:build unix

package filestore

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"syscall"
)

// checkPrivate refuses a file or folder with any permission for group or
// others, or owned by another user.
func checkPrivate(path string, fi fs.FileInfo) error {
	if fi.Mode().Perm()&0o077 != 0 {
		return &PermissionError{Path: path, Mode: fi.Mode(), Reason: "group or others have access"}
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != os.Geteuid() {
		return &PermissionError{Path: path, Mode: fi.Mode(), Reason: fmt.Sprintf("owned by uid %d, not by this user (uid %d)", st.Uid, os.Geteuid())}
	}
	return nil
}

// openPrivate opens a grant file for reading, refusing a link (so the
// file cannot be redirected elsewhere), anything but a regular file, and a
// file failing checkPrivate. The checks are made on the open file, so they
// hold for what is read.
func openPrivate(path string) (*os.File, error) {
	// O_NONBLOCK keeps a FIFO put there from blocking the open; it
	// changes nothing for a regular file.
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if errors.Is(err, syscall.ELOOP) {
		return nil, &PermissionError{Path: path, Mode: fs.ModeSymlink, Reason: "a symbolic link"}
	}
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err == nil && !fi.Mode().IsRegular() {
		err = &PermissionError{Path: path, Mode: fi.Mode(), Reason: "not a regular file"}
	} else if err == nil {
		err = checkPrivate(path, fi)
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}
