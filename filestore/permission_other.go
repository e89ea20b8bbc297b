//go:build !unix

package filestore

import (
	"io/fs"
	"os"
)

// checkPrivate checks nothing: Windows has no mode bits, and the folder's
// access list, inherited from the user's profile, keeps others out.
func checkPrivate(string, fs.FileInfo) error { return nil }

// openPrivate opens a grant file for reading, refusing anything but a
// regular file.
func openPrivate(path string) (*os.File, error) {
	fi, err := os.Lstat(path)
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, &PermissionError{Path: path, Mode: fi.Mode(), Reason: "not a regular file"}
	}
	return os.Open(path)
}
