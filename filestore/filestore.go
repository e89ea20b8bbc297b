// Package filestore keeps stepup grants in files: a [stepup.Store] for
// command-line programs, whose tokens then survive a restart, and for the
// processes of one user on one machine, which then refresh and escalate
// one at a time.
//
// Each key has one file, named by a hash of the key (never the resource
// URL), in a folder only the user can enter: by default
// [os.UserConfigDir]/stepup/tokens, created 0700. Files are written 0600 to
// a temporary file in the same folder, flushed to disk, renamed over the
// old one and the folder flushed in turn, so a crash at any moment leaves
// the old record or the new one, never a part of one. On Unix the store
// refuses, with a [*PermissionError], a folder or file that another user
// could read or change, or that is not the user's own. Windows has no such
// mode bits: the folder's access list, inherited from the user's profile,
// is relied on there.
//
// [Store.Update] holds an advisory lock (flock on Unix, LockFileEx on
// Windows) on a lock file beside the key's file, so that one process at a
// time runs it; goroutines of one process queue in memory first. The lock
// goes with the process, so a process that dies releases it.
package filestore

import (
	"context"
	"crypto/cipher"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/gofrs/flock"

	"github.com/stepup-go/stepup"
	"github.com/stepup-go/stepup/internal/backoff"
	"github.com/stepup-go/stepup/internal/grantrecord"
	"github.com/stepup-go/stepup/internal/keylock"
)

// ErrCorrupt says that a stored record cannot be used: it is not a record,
// was altered, was moved from another key's file, was written by an unknown
// version, or is sealed while the store has no AEAD (or the other way
// round). Load and Update return it wrapped; [Store.Delete] clears it.
var ErrCorrupt = grantrecord.ErrCorrupt

// Lock polling: a waiting process retries the lock file from every
// millisecond up to every 100 ms, so a lock released while another process
// waits is noticed within about 100 ms, and a wait through a consent of
// several minutes costs a few wake-ups a second.
const (
	lockPollMin = time.Millisecond
	lockPollMax = 100 * time.Millisecond
)

// Store keeps grants in files. It is safe for concurrent use, and any
// number of Stores, in one process or many, may share a folder.
type Store struct {
	dir   string
	codec grantrecord.Codec
	local keylock.Set
}

var _ stepup.Store = (*Store)(nil)

// Option configures a [Store] made by [New].
type Option func(*Store)

// WithDir keeps the files in dir instead of [os.UserConfigDir]/stepup/tokens.
// On Unix, dir must be the user's and closed to others (0700); New creates
// it so when it is missing.
func WithDir(dir string) Option {
	return func(s *Store) { s.dir = dir }
}

// WithAEAD seals every record with aead (for example AES-GCM from
// [crypto/aes] and [crypto/cipher.NewGCM]) under a random nonce, bound to
// the record's key, and refuses records that are not so sealed. Keep the
// AEAD's key apart from the files, in the system's keychain for instance.
func WithAEAD(aead cipher.AEAD) Option {
	return func(s *Store) { s.codec.AEAD = aead }
}

// New returns a store keeping its files in the folder [WithDir] names, by
// default [os.UserConfigDir]/stepup/tokens, creating it (0700) if needed.
// It returns a [*PermissionError] when the folder is open to others.
func New(opts ...Option) (*Store, error) {
	s := &Store{}
	for _, opt := range opts {
		opt(s)
	}
	if s.dir == "" {
		base, err := os.UserConfigDir()
		if err != nil {
			return nil, fmt.Errorf("filestore: no folder given and no user config folder: %w", err)
		}
		s.dir = filepath.Join(base, "stepup", "tokens")
	}
	dir, err := filepath.Abs(s.dir)
	if err != nil {
		return nil, fmt.Errorf("filestore: %w", err)
	}
	s.dir = dir
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("filestore: creating the folder: %w", err)
	}
	if err := checkDir(dir); err != nil {
		return nil, err
	}
	return s, nil
}

// Dir returns the folder the store keeps its files in.
func (s *Store) Dir() string { return s.dir }

// Load returns the grant saved under key, or nil when there is none. It
// takes no lock: a file is always replaced whole, so Load reads the old
// grant or the new one.
func (s *Store) Load(ctx context.Context, key stepup.StoreKey) (*stepup.SavedGrant, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := checkDir(s.dir); err != nil {
		return nil, err
	}
	return s.read(key, grantrecord.ID(key))
}

// Update runs fn while it holds key's lock, in this process and on the
// lock file, and saves the grant fn returns, if any. It waits for the lock
// as long as ctx allows. The lock is never lost while fn runs, so fn gets
// ctx itself. A temporary file left by a process that died while writing
// key's file is removed.
// fn must not call Update or Delete for key: it would wait for itself.
func (s *Store) Update(ctx context.Context, key stepup.StoreKey, fn func(ctx context.Context, saved *stepup.SavedGrant) (*stepup.SavedGrant, error)) error {
	id := grantrecord.ID(key)
	unlock, err := s.lock(ctx, id)
	if err != nil {
		return err
	}
	defer unlock()
	saved, err := s.read(key, id)
	if err != nil {
		return err
	}
	g, err := fn(ctx, saved)
	if err != nil || g == nil {
		return err
	}
	rec, err := s.codec.Encode(key, g)
	if err != nil {
		return fmt.Errorf("filestore: saving %s: %w", s.grantPath(id), err)
	}
	s.removeTemps(id)
	if err := writeFile(s.dir, s.grantPath(id), rec); err != nil {
		return fmt.Errorf("filestore: saving: %w", err)
	}
	return nil
}

// Delete removes the grant saved under key, if any, under key's lock.
func (s *Store) Delete(ctx context.Context, key stepup.StoreKey) error {
	id := grantrecord.ID(key)
	unlock, err := s.lock(ctx, id)
	if err != nil {
		return err
	}
	defer unlock()
	s.removeTemps(id)
	if err := os.Remove(s.grantPath(id)); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("filestore: deleting: %w", err)
	}
	if err := syncDir(s.dir); err != nil {
		return fmt.Errorf("filestore: deleting: %w", err)
	}
	return nil
}

func (s *Store) grantPath(id string) string { return filepath.Join(s.dir, id+".json") }
func (s *Store) lockPath(id string) string  { return filepath.Join(s.dir, id+".lock") }

// read returns the grant in key's file, nil when there is none.
func (s *Store) read(key stepup.StoreKey, id string) (*stepup.SavedGrant, error) {
	path := s.grantPath(id)
	f, err := openPrivate(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	rec, err := io.ReadAll(io.LimitReader(f, grantrecord.MaxSize+1))
	if err != nil {
		return nil, fmt.Errorf("filestore: reading: %w", err)
	}
	g, err := s.codec.Decode(key, rec)
	if err != nil {
		return nil, fmt.Errorf("filestore: %s: %w", path, err)
	}
	return g, nil
}

// lock takes key's lock in this process, then on its lock file, polling
// with backoff while another process holds it, until ctx ends.
func (s *Store) lock(ctx context.Context, id string) (unlock func(), err error) {
	if err := checkDir(s.dir); err != nil {
		return nil, err
	}
	unlockLocal, err := s.local.Lock(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("filestore: waiting for the lock: %w", err)
	}
	fl := flock.New(s.lockPath(id), flock.SetPermissions(0o600))
	poll := backoff.Backoff{Min: lockPollMin, Max: lockPollMax}
	for {
		ok, err := fl.TryLock()
		if err != nil {
			unlockLocal()
			return nil, fmt.Errorf("filestore: locking: %w", err)
		}
		if ok {
			break
		}
		if err := backoff.Sleep(ctx, poll.Next()); err != nil {
			unlockLocal()
			return nil, fmt.Errorf("filestore: waiting for the lock: %w", err)
		}
	}
	return func() {
		// An unlock that fails leaves the lock to the end of the process,
		// which is all that can be done.
		_ = fl.Unlock()
		unlockLocal()
	}, nil
}

// removeTemps removes the temporary files of key's file, which only a
// process that died while writing leaves: a caller holding key's lock is
// the only writer.
func (s *Store) removeTemps(id string) {
	temps, _ := filepath.Glob(filepath.Join(s.dir, "."+id+".json*"))
	for _, t := range temps {
		_ = os.Remove(t)
	}
}
