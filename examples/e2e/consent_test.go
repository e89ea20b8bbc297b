package e2e

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stepup-go/stepup"
	"github.com/stepup-go/stepup/examples/internal/mcpclient"
	"github.com/stepup-go/stepup/examples/internal/mcpserver"
	"github.com/stepup-go/stepup/internal/oauthtest"
)

// The user declines the new scope: the call that needed it fails with an
// error that says so (stepup.ErrDeclined), after one prompt; the session
// survives and serves the calls that need no new scope; a second call that
// needs the declined scope fails again without a new prompt.
func TestDeclinedConsent(t *testing.T) {
	forEach(t, func(t *testing.T, sdk mcpclient.SDK, srv serverKind) {
		w := newWorld(t, sdk, srv)
		s := w.connect(mcpclient.Options{ProtocolVersion: protocolFor(sdk, srv)})
		w.as.SetConsent(oauthtest.DeclineIfRequested(mcpserver.ScopeWrite))

		_, err := s.CallTool(w.ctx, mcpserver.ToolWrite, map[string]any{"text": "no"})
		require.Error(t, err)
		assert.ErrorIs(t, err, stepup.ErrDeclined, "the SDK passes stepup's error on")
		assert.Equal(t, 2, w.as.Stats().ConsentPrompts, "the login and the declined consent")

		_, err = s.CallTool(w.ctx, mcpserver.ToolRead, nil)
		require.NoError(t, err, "the session survives the declined call")

		_, err = s.CallTool(w.ctx, mcpserver.ToolWrite, map[string]any{"text": "still no"})
		require.Error(t, err)
		assert.ErrorIs(t, err, stepup.ErrDeclined, "the guard remembers the decline")
		assert.Equal(t, 2, w.as.Stats().ConsentPrompts, "a declined scope is not asked for again at once")

		_, err = s.CallTool(w.ctx, mcpserver.ToolRead, nil)
		require.NoError(t, err, "the session survives the stopped call")
		assert.Equal(t, 0, w.as.Stats().Refreshes())
	})
}

// The user grants part of the scopes (not mcp:write): the call that needed
// the missing one fails after one prompt, and the session goes on serving
// the calls the granted scopes allow. (The replay with the narrower token
// draws the same 403, which the guard stops: the go-sdk client keeps its
// session only if that stop is an error from RoundTrip, not the raw 403.)
func TestPartlyGrantedConsent(t *testing.T) {
	forEach(t, func(t *testing.T, sdk mcpclient.SDK, srv serverKind) {
		w := newWorld(t, sdk, srv)
		s := w.connect(mcpclient.Options{ProtocolVersion: protocolFor(sdk, srv)})
		w.as.SetConsent(oauthtest.GrantOnly(mcpserver.ScopeRead, mcpserver.ScopeOffline))

		_, err := s.CallTool(w.ctx, mcpserver.ToolWrite, map[string]any{"text": "no"})
		require.Error(t, err)
		assert.Equal(t, 2, w.as.Stats().ConsentPrompts, "one prompt for the step-up")
		_, granted := w.ts.Scopes()
		assert.False(t, granted.Contains(mcpserver.ScopeWrite))

		_, err = s.CallTool(w.ctx, mcpserver.ToolRead, nil)
		require.NoError(t, err, "the session survives the partly granted consent")
		assert.Equal(t, 2, w.as.Stats().ConsentPrompts)
		assert.Equal(t, 0, w.as.Stats().Refreshes())
	})
}
