package e2e

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stepup-go/stepup/examples/internal/mcpclient"
	"github.com/stepup-go/stepup/examples/internal/mcpserver"
)

// An access token the server no longer accepts (401; the go-sdk server
// sends no error code) is refreshed once with the refresh token, without
// asking the user, and the call is replayed (RFC 6750 §3.1, RFC 6749 §6).
func TestExpired401WithRefreshToken(t *testing.T) {
	forEach(t, func(t *testing.T, sdk mcpclient.SDK, srv serverKind) {
		w := newWorld(t, sdk, srv)
		s := w.connect(mcpclient.Options{ProtocolVersion: protocolFor(sdk, srv)})
		w.as.ExpireAccessTokens()

		_, err := s.CallTool(w.ctx, mcpserver.ToolRead, nil)
		require.NoError(t, err)
		st := w.as.Stats()
		assert.Equal(t, 1, st.Refreshes())
		assert.Equal(t, 1, st.ConsentPrompts, "a refresh asks nobody")
		assert.Equal(t, 0, st.ReusedRefreshTokens)
		assert.Equal(t, 1, w.mcp.Counts().Unauthorized-1, "one 401 for the login, one for the expired token")
	})
}

// Without a refresh token (MCP servers often issue none: here the 401 does
// not ask for offline_access) the expired token is answered by a new
// authorization through the Escalator.
func TestExpired401WithoutRefreshToken(t *testing.T) {
	forEach(t, func(t *testing.T, sdk mcpclient.SDK, srv serverKind) {
		w := newWorld(t, sdk, srv, func(st *setup) {
			st.serverConfig = func(c *mcpserver.Config) { c.BaseScopes = []string{mcpserver.ScopeRead} }
		})
		s := w.connect(mcpclient.Options{ProtocolVersion: protocolFor(sdk, srv)})
		tok, err := w.ts.Token()
		require.NoError(t, err)
		require.Empty(t, tok.RefreshToken, "no offline_access, no refresh token")
		w.as.ExpireAccessTokens()

		_, err = s.CallTool(w.ctx, mcpserver.ToolRead, nil)
		require.NoError(t, err)
		st := w.as.Stats()
		assert.Equal(t, 0, st.Refreshes())
		assert.Equal(t, 2, st.ConsentPrompts, "the login, then a re-authorization")
		assert.Equal(t, [][]string{{mcpserver.ScopeRead}, {mcpserver.ScopeRead}}, w.authorizations())
	})
}

// A token that expires under 20 concurrent calls is refreshed once for all
// of them: a second refresh would reuse the rotated refresh token, which
// the authorization server punishes by revoking the grant.
func TestExpiryUnderConcurrentCalls(t *testing.T) {
	forEach(t, func(t *testing.T, sdk mcpclient.SDK, srv serverKind) {
		w := newWorld(t, sdk, srv)
		s := w.connect(mcpclient.Options{ProtocolVersion: protocolFor(sdk, srv)})
		w.as.ExpireAccessTokens()

		errs := callConcurrently(w, s, concurrentCalls, mcpserver.ToolRead, nil)
		for _, err := range errs {
			assert.NoError(t, err)
		}
		st := w.as.Stats()
		assert.Equal(t, 1, st.Refreshes(), "one refresh for all the calls")
		assert.Equal(t, 0, st.ReusedRefreshTokens)
		assert.Equal(t, 1, st.ConsentPrompts)
		assert.Equal(t, concurrentCalls, w.mcp.Counts().ToolCalls)
	})
}
