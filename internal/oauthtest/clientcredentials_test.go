package oauthtest

import (
	"context"
	"net/http"
	"net/url"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

// A confidential client gets the scopes it asks and no refresh token, even
// with offline_access; a public client, an unknown scope and an unknown
// resource are refused; no resource names the server's one.
func TestClientCredentials(t *testing.T) {
	srv := New(Config{
		ScopesSupported: []string{"mcp:read", "offline_access"},
		Clients:         []Client{{ID: "svc", Secret: "svc-secret"}, {ID: "cli"}},
	})
	srv.AllowResource(testResource)
	base := &http.Transport{}
	t.Cleanup(func() {
		base.CloseIdleConnections()
		srv.Close()
	})
	ctx := context.WithValue(context.Background(), oauth2.HTTPClient, &http.Client{Transport: base})
	cc := func(id, secret, resource string, scopes ...string) (*oauth2.Token, error) {
		cfg := &clientcredentials.Config{ClientID: id, ClientSecret: secret, TokenURL: srv.TokenEndpoint(), Scopes: scopes,
			AuthStyle: oauth2.AuthStyleInHeader, EndpointParams: url.Values{}}
		if resource != "" {
			cfg.EndpointParams.Set("resource", resource)
		}
		if secret == "" {
			cfg.AuthStyle = oauth2.AuthStyleInParams
		}
		return cfg.Token(ctx)
	}

	tok, err := cc("svc", "svc-secret", testResource, "mcp:read", "offline_access")
	require.NoError(t, err)
	assert.Empty(t, tok.RefreshToken)
	info, err := srv.Verify(tok.AccessToken, testResource)
	require.NoError(t, err)
	assert.Equal(t, []string{"mcp:read", "offline_access"}, info.Scopes)

	tok, err = cc("svc", "svc-secret", "", "mcp:read")
	require.NoError(t, err, "the default resource")
	_, err = srv.Verify(tok.AccessToken, testResource)
	require.NoError(t, err)

	for _, tc := range []struct {
		name, id, secret, resource, scope, code string
	}{
		{"a public client", "cli", "", testResource, "mcp:read", "unauthorized_client"},
		{"an unknown scope", "svc", "svc-secret", testResource, "mcp:admin", "invalid_scope"},
		{"an unknown resource", "svc", "svc-secret", "http://127.0.0.1:2/other", "mcp:read", "invalid_target"},
		{"a wrong secret", "svc", "nope", testResource, "mcp:read", "invalid_client"},
	} {
		_, err := cc(tc.id, tc.secret, tc.resource, tc.scope)
		var re *oauth2.RetrieveError
		require.ErrorAs(t, err, &re, tc.name)
		assert.Equal(t, tc.code, re.ErrorCode, tc.name)
	}
	assert.Equal(t, 6, srv.Stats().TokenRequests["client_credentials"])
}
