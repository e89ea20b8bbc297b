package realserver

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/gofrs/flock"
)

// Environment variables that choose the Hydra program.
const (
	// EnvHydra names a built Hydra binary to run instead of building one.
	EnvHydra = "STEPUP_HYDRA"
	// hydraRequireEnv, set to 1, makes a real server that cannot be had
	// fail the test instead of skipping it.
	hydraRequireEnv = "STEPUP_REQUIRE_REAL_SERVERS"
)

// hydraBuildTags are the build tags of Hydra: sqlite brings the in-memory
// database (DSN=memory), without the extension loading it does not need.
const hydraBuildTags = "sqlite,sqlite_omit_load_extension"

// hydraBuildTimeout bounds building Hydra; a cold module cache takes a
// few minutes on two cores.
const hydraBuildTimeout = 10 * time.Minute

// hydraBinary returns the path of the Hydra program to run: $STEPUP_HYDRA,
// else a binary built from the servers/hydra module of this checkout into
// the user's cache directory, under the hash of that module's go.mod and
// go.sum, so that it is built again only when the versions change. It
// skips the test (or fails it, under STEPUP_REQUIRE_REAL_SERVERS=1) when
// there is none and none can be built; in -short mode it builds none.
func hydraBinary(t testing.TB) string {
	t.Helper()
	if p := os.Getenv(EnvHydra); p != "" {
		if _, err := os.Stat(p); err != nil {
			hydraUnavailable(t, "%s=%s: %v", EnvHydra, p, err)
		}
		return p
	}
	mod, err := hydraModuleDir()
	if err != nil {
		hydraUnavailable(t, "Hydra: %v", err)
	}
	bin, err := hydraCachePath(mod)
	if err != nil {
		hydraUnavailable(t, "Hydra: %v", err)
	}
	if _, err := os.Stat(bin); err == nil {
		return bin
	}
	if testing.Short() {
		hydraUnavailable(t, "Hydra is not built (set %s, or run without -short to build it into %s)", EnvHydra, bin)
	}
	if err := buildHydraOnce(t, mod, bin); err != nil {
		hydraUnavailable(t, "building Hydra: %v", err)
	}
	return bin
}

// buildHydraOnce builds bin unless another test process, holding the lock
// next to it, has built it meanwhile: go test runs the packages that
// start Hydra at the same time, and one build is enough.
func buildHydraOnce(t testing.TB, mod, bin string) error {
	if err := os.MkdirAll(filepath.Dir(bin), 0o755); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), hydraBuildTimeout)
	defer cancel()
	lock := flock.New(bin+".lock", flock.SetPermissions(0o600))
	if _, err := lock.TryLockContext(ctx, time.Second); err != nil {
		return fmt.Errorf("locking %s: %w", lock.Path(), err)
	}
	defer lock.Unlock()
	if _, err := os.Stat(bin); err == nil {
		return nil
	}
	t.Logf("building Ory Hydra from %s into %s (a few minutes the first time)", mod, bin)
	return buildHydra(ctx, mod, bin)
}

// hydraUnavailable skips the test for a real server that cannot be run here,
// or fails it when hydraRequireEnv says that every real server must run.
func hydraUnavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	if os.Getenv(hydraRequireEnv) == "1" {
		t.Fatalf(format+" (required by %s=1)", append(args, hydraRequireEnv)...)
	}
	t.Skipf(format, args...)
}

// hydraModuleDir finds servers/hydra from this source file, so that any
// package's tests find it whatever their working directory.
func hydraModuleDir() (string, error) {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "", errors.New("cannot locate the source tree")
	}
	dir := filepath.Join(filepath.Dir(file), "..", "..", "..", "servers", "hydra")
	if _, err := os.Stat(filepath.Join(dir, "go.mod")); err != nil {
		return "", fmt.Errorf("the servers/hydra module is not here: %w", err)
	}
	return dir, nil
}

// hydraCachePath is where the binary built from the module in dir lives:
// under the hash of what it is built from and how.
func hydraCachePath(dir string) (string, error) {
	h := sha256.New()
	h.Write([]byte(hydraBuildTags))
	for _, name := range []string{"go.mod", "go.sum"} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			return "", err
		}
		h.Write(b)
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(cache, "stepup-realservers", "hydra", hex.EncodeToString(h.Sum(nil))[:16], "hydra"), nil
}

// buildHydra builds the module in dir into bin. It builds next to bin and
// renames, so that bin is whole whenever it exists. GOWORK=off: the module
// is not in the workspace, whose versions Hydra's dependencies must not
// change.
func buildHydra(ctx context.Context, dir, bin string) error {
	tmp := fmt.Sprintf("%s.%d.tmp", bin, os.Getpid())
	defer os.Remove(tmp)
	env := append(os.Environ(), "GOWORK=off", "CGO_ENABLED=1", "GOFLAGS=-mod=readonly")
	list := exec.CommandContext(ctx, "go", "list", "-m", "-f", "{{.Version}}", "github.com/ory/hydra/v2")
	list.Dir, list.Env = dir, env
	version, err := list.Output()
	if err != nil {
		return fmt.Errorf("go list in %s: %w", dir, err)
	}
	// Hydra's release builds stamp the version in; without it the
	// program says "master".
	build := exec.CommandContext(ctx, "go", "build", "-tags", hydraBuildTags,
		"-ldflags", "-X github.com/ory/hydra/v2/driver/config.Version="+strings.TrimSpace(string(version)),
		"-o", tmp, "github.com/ory/hydra/v2")
	build.Dir, build.Env = dir, env
	if out, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("go build in %s: %w\n%s", dir, err, strings.TrimSpace(string(out)))
	}
	return os.Rename(tmp, bin)
}
