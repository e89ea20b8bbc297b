package discovery_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stepup-go/stepup/discovery"
)

// The MCP 2025-03-26 fallback: the metadata at the resource origin's
// RFC 8414 well-known URL, used although its issuer is not the origin,
// because the issuer and every endpoint are on that origin.
func TestLegacyAuthServer(t *testing.T) {
	s := newSite(t)
	s.json("/.well-known/oauth-authorization-server", `{"issuer":"{url}/oauth","authorization_endpoint":"{url}/oauth/authorize",`+
		`"token_endpoint":"{url}/oauth/token","registration_endpoint":"{url}/oauth/register","code_challenge_methods_supported":["S256"]}`)
	c := quick()
	closeIdle(t, c)

	d, err := c.LegacyAuthServer(context.Background(), s.URL+"/api/mcp?x=1")
	require.NoError(t, err)
	assert.Equal(t, s.URL+"/oauth", d.Issuer)
	assert.Equal(t, s.URL+"/oauth/token", d.TokenEndpoint)
	assert.Equal(t, []string{"/.well-known/oauth-authorization-server"}, s.requests(), "the authorization base URL discards the path")

	_, err = c.AuthServer(context.Background(), s.URL+"/mcp", s.URL)
	assert.ErrorIs(t, err, discovery.ErrMismatch, "the same document stays refused where RFC 8414 §3.3 applies")
}

// A document that names anything off the resource's origin is refused:
// nothing else vouches for it.
func TestLegacyAuthServerOffOriginRefused(t *testing.T) {
	for _, member := range []string{"issuer", "authorization_endpoint", "token_endpoint", "registration_endpoint"} {
		for _, elsewhere := range []string{"https://as.example", "http://127.0.0.1:1", "http://localhost:{port}"} {
			s := newSite(t)
			port := s.URL[strings.LastIndexByte(s.URL, ':')+1:]
			doc := map[string]string{
				"issuer":                 "{url}",
				"authorization_endpoint": "{url}/authorize",
				"token_endpoint":         "{url}/token",
				"registration_endpoint":  "{url}/register",
			}
			doc[member] = strings.ReplaceAll(elsewhere, "{port}", port) + "/x"
			b, err := json.Marshal(doc)
			require.NoError(t, err)
			s.json("/.well-known/oauth-authorization-server", string(b))
			c := quick()
			closeIdle(t, c)

			_, err = c.LegacyAuthServer(context.Background(), s.URL+"/mcp")
			assert.ErrorIs(t, err, discovery.ErrMismatch, "%s at %s", member, elsewhere)
		}
	}
}

func TestLegacyAuthServerNotFound(t *testing.T) {
	s := newSite(t)
	c := quick()
	closeIdle(t, c)

	_, err := c.LegacyAuthServer(context.Background(), s.URL+"/mcp")
	assert.ErrorIs(t, err, discovery.ErrNotFound)
	var se *discovery.StatusError
	require.ErrorAs(t, err, &se)
	assert.Equal(t, http.StatusNotFound, se.StatusCode)
	assert.Equal(t, []string{"/.well-known/oauth-authorization-server"}, s.requests(), "only the root RFC 8414 URL, asked once")
}

// A server error is not an absent document: the caller must not fall
// back to default endpoints because a server was briefly down.
func TestLegacyAuthServerServerError(t *testing.T) {
	s := newSite(t)
	s.handle("/.well-known/oauth-authorization-server", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "down", http.StatusServiceUnavailable)
	})
	c := quick()
	c.RetryMax = 1
	closeIdle(t, c)

	_, err := c.LegacyAuthServer(context.Background(), s.URL+"/mcp")
	require.Error(t, err)
	assert.NotErrorIs(t, err, discovery.ErrNotFound)
	assert.Len(t, s.requests(), 2, "retried once")
}

func TestLegacyAuthServerPolicy(t *testing.T) {
	c := quick()
	closeIdle(t, c)
	for _, resource := range []string{"https://10.1.2.3/mcp", "http://mcp.example/mcp", "https://[fe80::1]/mcp"} {
		_, err := c.LegacyAuthServer(context.Background(), resource)
		assert.ErrorIs(t, err, discovery.ErrRefusedTarget, resource)
	}
	_, err := c.LegacyAuthServer(context.Background(), "mcp.example/mcp")
	assert.Error(t, err)
}
