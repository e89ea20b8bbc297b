package realserver_test

import (
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/stepup-go/stepup/examples/internal/realserver"
)

// TestZitadelVersion keeps the version the zitadel server's name gives
// in step with the one examples/go.mod requires.
func TestZitadelVersion(t *testing.T) {
	mod, err := os.ReadFile("../../go.mod")
	require.NoError(t, err)
	require.Contains(t, strings.Split(string(mod), "\n"), "\tgithub.com/zitadel/oidc/v3 "+realserver.ZitadelOIDCVersion)
}
