package e2e

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/stepup-go/stepup/examples/internal/mcpclient"
	"github.com/stepup-go/stepup/examples/internal/mcpserver"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

var (
	baseScopes  = []string{mcpserver.ScopeRead, mcpserver.ScopeOffline}
	unionScopes = []string{mcpserver.ScopeRead, mcpserver.ScopeOffline, mcpserver.ScopeWrite}
)

// The seed scenario: the first 401 asks for offline_access, so the client
// holds a refresh token when write_note answers 403 for mcp:write. A
// refresh cannot widen scope (RFC 6749 §6): the client must ask for
// consent to the scopes it had and the one challenged, never refresh, and
// replay the call on the same session.
func TestSeed403(t *testing.T) {
	forEach(t, func(t *testing.T, sdk mcpclient.SDK, srv serverKind) {
		w := newWorld(t, sdk, srv)
		s := w.connect(mcpclient.Options{ProtocolVersion: protocolFor(sdk, srv)})
		_, err := s.CallTool(w.ctx, mcpserver.ToolRead, nil)
		require.NoError(t, err)

		out, err := s.CallTool(w.ctx, mcpserver.ToolWrite, map[string]any{"text": "hello"})
		require.NoError(t, err)
		assert.Equal(t, "saved: hello", out)

		st := w.as.Stats()
		assert.Equal(t, 2, st.ConsentPrompts, "one login, one consent for the step-up")
		assert.Equal(t, 0, st.Refreshes(), "no refresh for a 403")
		assert.Equal(t, 2, st.CodeExchanges())
		if auths := w.authorizations(); assert.Len(t, auths, 2) {
			assert.ElementsMatch(t, baseScopes, auths[0], "the login asks for the 401's scopes")
			assert.ElementsMatch(t, unionScopes, auths[1], "the step-up asks for requested ∪ granted ∪ challenged")
		}
		assert.Equal(t, 1, w.mcp.Counts().Forbidden)
		assert.Equal(t, 2, w.mcp.Counts().ToolCalls, "each tool ran once: the 403 was replayed, not retried twice")

		// The session goes on, with the wider token.
		out, err = s.CallTool(w.ctx, mcpserver.ToolRead, nil)
		require.NoError(t, err)
		assert.Equal(t, "hello", out)
		assert.Equal(t, 2, w.as.Stats().ConsentPrompts)
	})
}
