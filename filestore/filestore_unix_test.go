//go:build unix

package filestore_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stepup-go/stepup"
	"github.com/stepup-go/stepup/filestore"
	"github.com/stepup-go/stepup/internal/storetest"
)

// crashTokenSize is the size of the crash writer's tokens: small enough
// for many saves a second, so that a reader or a kill often meets one
// under way. (With a writer that truncates the file and writes it again
// in place, both tests below fail in most runs.)
const crashTokenSize = 16 << 10

// A process killed (SIGKILL) while it saves leaves the previous grant or
// the new one, whole, never a part of one; the temporary file it leaves is
// removed by the next Update. Each kill lands at a random moment of a save
// (encoding, writing, flushing, renaming), drawn from how long the save
// before took.
func TestKilledWriterLeavesAWholeFile(t *testing.T) {
	dir := privateDir(t)
	st := newStore(t, filestore.WithDir(dir))
	const rounds = 16
	for round := range rounds {
		p := storetest.Start(t, "crashwriter", envDir+"="+dir, envTokenSize+"="+strconv.Itoa(crashTokenSize))
		n := 3 + rand.IntN(3)
		var took time.Duration
		for i := 1; i <= n; i++ {
			var k, us int
			_, err := fmt.Sscanf(p.Expect("writing"), "%d %d", &k, &us)
			require.NoError(t, err)
			require.Equal(t, i, k)
			took = time.Duration(us) * time.Microsecond
		}
		// The delay picks the moment of the crash; it synchronises nothing.
		time.Sleep(rand.N(took + time.Microsecond))
		p.Kill()

		g, err := st.Load(context.Background(), storetest.Key)
		require.NoError(t, err, "round %d", round)
		require.NotNil(t, g)
		k, err := checkBigGrant(g, crashTokenSize)
		require.NoError(t, err, "round %d", round)
		// Grant n-1 was saved before "writing n" was printed; the kill may
		// land in save n or, on a fast save, in a later one.
		require.GreaterOrEqual(t, k, n-1, "round %d: killed after saving %d", round, n-1)
	}
	storetest.Save(t, st, storetest.Key, storetest.Grant("after"))
	temps, err := filepath.Glob(filepath.Join(dir, ".*"))
	require.NoError(t, err)
	require.Empty(t, temps, "temporary files of killed writers")
}

// While a process saves grant after grant, another reads them: every read
// finds a whole grant, since a file is replaced, never rewritten in place.
func TestReadersSeeWholeGrantsOnly(t *testing.T) {
	dir := privateDir(t)
	st := newStore(t, filestore.WithDir(dir))
	p := storetest.Start(t, "crashwriter", envDir+"="+dir, envTokenSize+"="+strconv.Itoa(crashTokenSize))
	p.Expect("writing 1")
	p.Expect("writing 2") // the first is saved
	seen := map[int]bool{}
	for reads := 0; len(seen) < 200; reads++ {
		g, err := st.Load(context.Background(), storetest.Key)
		require.NoError(t, err, "read %d", reads)
		k, err := checkBigGrant(g, crashTokenSize)
		require.NoError(t, err, "read %d", reads)
		seen[k] = true
	}
	p.Kill()
}

// The folder is created 0700 and files 0600 whatever the umask.
func TestCreatedPrivateWhateverTheUmask(t *testing.T) {
	old := syscall.Umask(0)
	defer syscall.Umask(old)
	st := newStore(t, filestore.WithDir(filepath.Join(t.TempDir(), "a", "tokens")))
	storetest.Save(t, st, storetest.Key, storetest.Grant("a1"))
	requireMode(t, st.Dir(), 0o700)
	entries, err := os.ReadDir(st.Dir())
	require.NoError(t, err)
	require.Len(t, entries, 2) // the grant and its lock file
	for _, e := range entries {
		requireMode(t, filepath.Join(st.Dir(), e.Name()), 0o600)
	}
}

func requireMode(t *testing.T, path string, want os.FileMode) {
	t.Helper()
	fi, err := os.Stat(path)
	require.NoError(t, err)
	require.Equal(t, want, fi.Mode().Perm(), path)
}

func TestOpenFolderRefused(t *testing.T) {
	for _, mode := range []os.FileMode{0o755, 0o750, 0o701, 0o702, 0o770, 0o707} {
		t.Run(mode.String(), func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "tokens")
			require.NoError(t, os.Mkdir(dir, 0o700))
			require.NoError(t, os.Chmod(dir, mode))
			_, err := filestore.New(filestore.WithDir(dir))
			requirePermission(t, err, dir)

			// Opened when private, then opened up: every use refuses.
			require.NoError(t, os.Chmod(dir, 0o700))
			st := newStore(t, filestore.WithDir(dir))
			storetest.Save(t, st, storetest.Key, storetest.Grant("a1"))
			require.NoError(t, os.Chmod(dir, mode))
			_, err = st.Load(context.Background(), storetest.Key)
			requirePermission(t, err, dir)
			requireUpdateRefused(t, st, dir)
			requirePermission(t, st.Delete(context.Background(), storetest.Key), dir)
		})
	}
}

func TestOpenFileRefused(t *testing.T) {
	for _, mode := range []os.FileMode{0o644, 0o640, 0o604, 0o602, 0o620, 0o660} {
		t.Run(mode.String(), func(t *testing.T) {
			st := newStore(t, filestore.WithDir(privateDir(t)))
			storetest.Save(t, st, storetest.Key, storetest.Grant("a1"))
			path := grantFile(t, st, storetest.Key)
			require.NoError(t, os.Chmod(path, mode))
			_, err := st.Load(context.Background(), storetest.Key)
			requirePermission(t, err, path)
			requireUpdateRefused(t, st, path)
		})
	}
}

func TestLinkedFileRefused(t *testing.T) {
	st := newStore(t, filestore.WithDir(privateDir(t)))
	planted := newStore(t, filestore.WithDir(privateDir(t)))
	elsewhere := filepath.Join(planted.Dir(), "planted.json")
	storetest.Save(t, planted, storetest.Key, storetest.Grant("planted"))
	require.NoError(t, os.Rename(grantFile(t, planted, storetest.Key), elsewhere))
	path := grantFile(t, st, storetest.Key)
	require.NoError(t, os.Symlink(elsewhere, path))
	_, err := st.Load(context.Background(), storetest.Key)
	requirePermission(t, err, path)
	requireUpdateRefused(t, st, path)
}

// A FIFO in place of the file is refused at once, not waited on.
func TestFIFORefused(t *testing.T) {
	st := newStore(t, filestore.WithDir(privateDir(t)))
	path := grantFile(t, st, storetest.Key)
	require.NoError(t, syscall.Mkfifo(path, 0o600))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := st.Load(ctx, storetest.Key)
	requirePermission(t, err, path)
}

func TestFileOfAnotherUserRefused(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("changing a file's owner needs root")
	}
	st := newStore(t, filestore.WithDir(privateDir(t)))
	storetest.Save(t, st, storetest.Key, storetest.Grant("a1"))
	path := grantFile(t, st, storetest.Key)
	require.NoError(t, os.Chown(path, 65534, 65534))
	_, err := st.Load(context.Background(), storetest.Key)
	requirePermission(t, err, path)
	require.Contains(t, err.Error(), "owned by uid 65534")

	require.NoError(t, os.Chown(path, 0, 0))
	require.NoError(t, os.Chown(st.Dir(), 65534, 65534))
	_, err = st.Load(context.Background(), storetest.Key)
	requirePermission(t, err, st.Dir())
}

func TestFolderThatIsAFileRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "file")
	require.NoError(t, os.WriteFile(path, nil, 0o600))
	_, err := filestore.New(filestore.WithDir(path))
	require.Error(t, err)
}

// requireUpdateRefused requires an Update to fail with a
// *PermissionError about path without calling fn.
func requireUpdateRefused(t *testing.T, st stepup.Store, path string) {
	t.Helper()
	called := false
	err := st.Update(context.Background(), storetest.Key, func(context.Context, *stepup.SavedGrant) (*stepup.SavedGrant, error) {
		called = true
		return storetest.Grant("over"), nil
	})
	requirePermission(t, err, path)
	require.False(t, called)
}
