package filestore_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/stepup-go/stepup"
	"github.com/stepup-go/stepup/filestore"
	"github.com/stepup-go/stepup/internal/storetest"
)

// envDir tells a child process which folder to open.
const envDir = "STEPUP_FILESTORE_TEST_DIR"

func TestMain(m *testing.M) {
	storetest.Main(func() (stepup.Store, error) {
		return filestore.New(filestore.WithDir(os.Getenv(envDir)))
	}, childRoles)
	goleak.VerifyTestMain(m)
}

// backing gives each test a new folder.
func backing(opts ...filestore.Option) storetest.Backing {
	return func(t *testing.T) func() stepup.Store {
		dir := privateDir(t)
		return func() stepup.Store {
			return newStore(t, append([]filestore.Option{filestore.WithDir(dir)}, opts...)...)
		}
	}
}

// privateDir returns a folder for a store, not made yet: New makes it
// 0700. (t.TempDir's are open to all.)
func privateDir(t testing.TB) string {
	return filepath.Join(t.TempDir(), "tokens")
}

func newStore(t testing.TB, opts ...filestore.Option) *filestore.Store {
	t.Helper()
	st, err := filestore.New(opts...)
	require.NoError(t, err)
	return st
}

func TestConformance(t *testing.T) {
	storetest.Conformance(t, backing())
}

func TestConformanceSealed(t *testing.T) {
	storetest.Conformance(t, backing(filestore.WithAEAD(storetest.NewAEAD(t))))
}

// Four processes increment one counter 25 times each: any Update that ran
// beside another would lose an increment.
func TestExclusiveAcrossProcesses(t *testing.T) {
	dir := privateDir(t)
	storetest.Increments(t, 4, 25, envDir+"="+dir)
	require.Equal(t, 100, storetest.Count(t, newStore(t, filestore.WithDir(dir)), storetest.Key))
}

func TestDefaultFolderIsInTheUserConfigFolder(t *testing.T) {
	home := t.TempDir()
	t.Setenv("XDG_CONFIG_HOME", home) // Unix
	t.Setenv("AppData", home)         // Windows
	t.Setenv("HOME", home)            // macOS: ~/Library/Application Support
	cfg, err := os.UserConfigDir()
	require.NoError(t, err)
	st := newStore(t)
	require.Equal(t, filepath.Join(cfg, "stepup", "tokens"), st.Dir())
	fi, err := os.Stat(st.Dir())
	require.NoError(t, err)
	require.True(t, fi.IsDir())
}

// The files are named by a hash of the key: the resource URL appears in no
// path.
func TestFileNamesHideTheResource(t *testing.T) {
	st := newStore(t, filestore.WithDir(privateDir(t)))
	storetest.Save(t, st, storetest.Key, storetest.Grant("a1"))
	entries, err := os.ReadDir(st.Dir())
	require.NoError(t, err)
	require.Len(t, entries, 2)
	for _, e := range entries {
		require.Regexp(t, regexp.MustCompile(`^[0-9a-f]{64}\.(json|lock)$`), e.Name())
	}
}

// A record in the clear names its key; moved to another key's file, it is
// refused.
func TestMovedRecordRefused(t *testing.T) {
	for name, opts := range map[string][]filestore.Option{"clear": nil, "sealed": {filestore.WithAEAD(storetest.NewAEAD(t))}} {
		t.Run(name, func(t *testing.T) {
			st := newStore(t, append(opts, filestore.WithDir(privateDir(t)))...)
			other := stepup.StoreKey{Resource: "https://other.example.com/mcp"}
			storetest.Save(t, st, storetest.Key, storetest.Grant("secret-a"))
			storetest.Save(t, st, other, storetest.Grant("secret-b"))
			a, b := grantFile(t, st, storetest.Key), grantFile(t, st, other)
			rec, err := os.ReadFile(a)
			require.NoError(t, err)
			require.NoError(t, os.WriteFile(b, rec, 0o600))

			storetest.RequireUnusable(t, st, other, "secret-a", "secret-b")
		})
	}
}

func TestSealedRecords(t *testing.T) {
	aead := storetest.NewAEAD(t)
	dir := privateDir(t)
	st := newStore(t, filestore.WithDir(dir), filestore.WithAEAD(aead))
	storetest.Save(t, st, storetest.Key, storetest.Grant("secret-access"))
	path := grantFile(t, st, storetest.Key)
	rec, err := os.ReadFile(path)
	require.NoError(t, err)
	require.NotContains(t, string(rec), "secret-access")
	require.NotContains(t, string(rec), "refresh-secret-access")
	require.NotContains(t, string(rec), "example.com", "the key is not in a sealed record")
	storetest.RequireGrant(t, storetest.Grant("secret-access"), storetest.Load(t, st, storetest.Key))

	t.Run("AlteredByteRefused", func(t *testing.T) {
		var env map[string]any
		require.NoError(t, json.Unmarshal(rec, &env))
		sealed, err := base64.StdEncoding.DecodeString(env["sealed"].(string))
		require.NoError(t, err)
		for _, i := range []int{0, aead.NonceSize(), len(sealed) - 1} { // nonce, ciphertext, tag
			altered := append([]byte(nil), sealed...)
			altered[i] ^= 1
			env["sealed"] = altered
			b, err := json.Marshal(env)
			require.NoError(t, err)
			require.NoError(t, os.WriteFile(path, b, 0o600))
			_, err = st.Load(context.Background(), storetest.Key)
			storetest.RequireCorrupt(t, err, "secret-access")
		}
		require.NoError(t, os.WriteFile(path, rec, 0o600))
		storetest.RequireGrant(t, storetest.Grant("secret-access"), storetest.Load(t, st, storetest.Key))
	})

	t.Run("AnotherAEADKeyRefused", func(t *testing.T) {
		_, err := newStore(t, filestore.WithDir(dir), filestore.WithAEAD(storetest.NewAEAD(t))).Load(context.Background(), storetest.Key)
		storetest.RequireCorrupt(t, err, "secret-access")
	})

	t.Run("NoAEADRefusesSealed", func(t *testing.T) {
		_, err := newStore(t, filestore.WithDir(dir)).Load(context.Background(), storetest.Key)
		storetest.RequireCorrupt(t, err, "secret-access")
	})

	t.Run("AEADRefusesClear", func(t *testing.T) {
		clear := newStore(t, filestore.WithDir(privateDir(t)))
		storetest.Save(t, clear, storetest.Key, storetest.Grant("planted"))
		_, err := newStore(t, filestore.WithDir(clear.Dir()), filestore.WithAEAD(aead)).Load(context.Background(), storetest.Key)
		storetest.RequireCorrupt(t, err, "planted")
	})
}

func TestCorruptRecordsRefused(t *testing.T) {
	st := newStore(t, filestore.WithDir(privateDir(t)))
	storetest.Save(t, st, storetest.Key, storetest.Grant("secret-access"))
	path := grantFile(t, st, storetest.Key)
	rec, err := os.ReadFile(path)
	require.NoError(t, err)
	for name, b := range map[string][]byte{
		"truncated":     rec[:len(rec)/2],
		"empty":         {},
		"not JSON":      []byte("secret-access"),
		"next version":  []byte(strings.Replace(string(rec), `"v":1`, `"v":2`, 1)),
		"no version":    []byte(strings.Replace(string(rec), `"v":1,`, ``, 1)),
		"no token":      []byte(`{"v":1,"resource":"https://mcp.example.com/mcp","issuer":"https://as.example.com","grant":{"issuer":"x"}}`),
		"over 1 MiB":    append(append([]byte(`{"v":1,"x":"`), strings.Repeat("a", 1<<20)...), `"}`...),
		"grant not obj": []byte(`{"v":1,"resource":"https://mcp.example.com/mcp","issuer":"https://as.example.com","grant":"secret-access"}`),
	} {
		require.NoError(t, os.WriteFile(path, b, 0o600))
		_, err := st.Load(context.Background(), storetest.Key)
		storetest.RequireCorrupt(t, err, "secret-access")
		require.Contains(t, err.Error(), path, name)
	}
}

// grantFile returns the path of key's file, the one file that appears
// when key's grant is saved.
func grantFile(t *testing.T, st *filestore.Store, key stepup.StoreKey) string {
	t.Helper()
	tmp := newStore(t, filestore.WithDir(privateDir(t)))
	storetest.Save(t, tmp, key, storetest.Grant("probe"))
	matches, err := filepath.Glob(filepath.Join(tmp.Dir(), "*.json"))
	require.NoError(t, err)
	require.Len(t, matches, 1)
	return filepath.Join(st.Dir(), filepath.Base(matches[0]))
}

// requirePermission requires err to be a *PermissionError about path.
func requirePermission(t *testing.T, err error, path string) {
	t.Helper()
	var pe *filestore.PermissionError
	require.True(t, errors.As(err, &pe), "%v is not a *PermissionError", err)
	require.Equal(t, path, pe.Path)
	require.ErrorIs(t, err, fs.ErrPermission)
}
