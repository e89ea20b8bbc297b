package realserver

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// RequireEnv is the environment variable that, set to 1, makes a missing
// server fail the test instead of skipping it.
const RequireEnv = "STEPUP_REQUIRE_REAL_SERVERS"

// missing ends t because a server's program is not installed: a skip, or
// with RequireEnv=1 a failure.
func missing(t testing.TB, format string, args ...any) {
	t.Helper()
	if os.Getenv(RequireEnv) == "1" {
		t.Fatalf(format+" ("+RequireEnv+"=1)", args...)
	}
	t.Skipf(format, args...)
}

// findNode returns the Node.js binary: $STEPUP_NODE, else the Node 22 the
// conformance script caches, else node on PATH.
func findNode() (string, error) {
	if p := os.Getenv("STEPUP_NODE"); p != "" {
		return exec.LookPath(p)
	}
	if home, err := os.UserHomeDir(); err == nil {
		p := filepath.Join(home, ".cache", "stepup-conformance", "node22", "node_modules", "node", "bin", "node")
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return exec.LookPath("node")
}
