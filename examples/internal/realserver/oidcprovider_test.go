package realserver_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"

	"github.com/stepup-go/stepup/examples/internal/realserver"
)

// TestOIDCProvider walks the provider through what an MCP client does,
// with x/oauth2 alone: it registers a native client, is authorized with
// PKCE for the resource with a refresh token, refreshes, and reuses the
// rotated refresh token, which revokes the grant.
func TestOIDCProvider(t *testing.T) {
	const resource = "http://127.0.0.1:1/mcp"
	srv := realserver.StartOIDCProvider(t, realserver.OIDCProviderOptions{Resource: resource})
	ctx := context.Background()

	codes := make(chan url.Values, 1)
	cb := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { codes <- r.URL.Query() }))
	t.Cleanup(cb.Close)
	redirect := cb.URL + "/callback"

	reg, err := json.Marshal(map[string]any{
		"redirect_uris": []string{redirect}, "application_type": "native",
		"token_endpoint_auth_method": "none", "grant_types": []string{"authorization_code", "refresh_token"},
	})
	require.NoError(t, err)
	resp, err := http.Post(srv.Issuer+"/reg", "application/json", strings.NewReader(string(reg)))
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusCreated, resp.StatusCode)
	var client struct {
		ClientID string `json:"client_id"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&client))

	cfg := &oauth2.Config{
		ClientID: client.ClientID, RedirectURL: redirect,
		Endpoint: oauth2.Endpoint{AuthURL: srv.Issuer + "/auth", TokenURL: srv.Issuer + "/token", AuthStyle: oauth2.AuthStyleInParams},
		Scopes:   []string{realserver.ScopeOpenID, realserver.ScopeOffline, realserver.ScopeRead},
	}
	verifier := oauth2.GenerateVerifier()
	srv.Decide(realserver.Decision{ACR: realserver.ACRMFA})
	require.NoError(t, srv.Browser(ctx, cfg.AuthCodeURL("st", oauth2.S256ChallengeOption(verifier),
		oauth2.SetAuthURLParam("resource", resource), oauth2.SetAuthURLParam("prompt", "consent"))))
	q := <-codes
	require.Equal(t, "st", q.Get("state"), "%v", q)
	require.Equal(t, srv.Issuer, q.Get("iss"), "RFC 9207")
	tok, err := cfg.Exchange(ctx, q.Get("code"), oauth2.VerifierOption(verifier), oauth2.SetAuthURLParam("resource", resource))
	require.NoError(t, err)
	require.NotEmpty(t, tok.RefreshToken)

	info, err := srv.Verify(ctx, tok.AccessToken)
	require.NoError(t, err)
	assert.Equal(t, "alice", info.Subject)
	assert.Equal(t, []string{realserver.ScopeRead}, info.Scopes, "the access token carries the resource's scopes")
	assert.Equal(t, realserver.ACRMFA, info.ACR)
	assert.False(t, info.AuthTime.IsZero())
	_, err = srv.Verify(ctx, tok.AccessToken+"x")
	assert.ErrorIs(t, err, realserver.ErrInvalidToken)

	old := tok.RefreshToken
	tok.Expiry = tok.Expiry.Add(-24 * 3600e9)
	refreshed, err := cfg.TokenSource(ctx, tok).Token()
	require.NoError(t, err)
	assert.NotEqual(t, old, refreshed.RefreshToken, "rotated")
	_, err = srv.Verify(ctx, refreshed.AccessToken)
	require.NoError(t, err)

	tok.AccessToken = ""
	tok.RefreshToken = old
	_, err = cfg.TokenSource(ctx, tok).Token()
	var re *oauth2.RetrieveError
	require.ErrorAs(t, err, &re)
	assert.Equal(t, "invalid_grant", re.ErrorCode)
	refreshed.Expiry = tok.Expiry
	_, err = cfg.TokenSource(ctx, refreshed).Token()
	require.ErrorAs(t, err, &re, "the reuse revoked the grant, the rotated token with it")

	c := srv.Counts()
	assert.Equal(t, 1, c.Authorizations)
	assert.Equal(t, 1, c.Registrations)
	assert.Equal(t, map[string]int{"authorization_code": 1, "refresh_token": 3}, c.Grants)
}
