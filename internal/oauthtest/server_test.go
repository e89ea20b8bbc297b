package oauthtest

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"golang.org/x/oauth2"
)

const (
	testResource = "http://127.0.0.1:1/mcp"
	testRedirect = "http://127.0.0.1/callback"
)

// client is a pre-registered public client of srv, through x/oauth2.
func client(srv *Server, scopes ...string) *oauth2.Config {
	return &oauth2.Config{
		ClientID:    "cli",
		Endpoint:    oauth2.Endpoint{AuthURL: srv.AuthorizationEndpoint(), TokenURL: srv.TokenEndpoint(), AuthStyle: oauth2.AuthStyleInParams},
		RedirectURL: testRedirect,
		Scopes:      scopes,
	}
}

func newServer(t *testing.T) (*Server, context.Context) {
	t.Helper()
	srv := New(Config{IssParameter: true, Clients: []Client{{ID: "cli", RedirectURIs: []string{testRedirect}}}})
	srv.AllowResource(testResource)
	base := &http.Transport{}
	t.Cleanup(func() {
		base.CloseIdleConnections()
		srv.Close()
	})
	return srv, context.WithValue(context.Background(), oauth2.HTTPClient, &http.Client{Transport: base})
}

// authorize sends the authorization request and returns the redirect's
// query, without following it.
func authorize(t *testing.T, ctx context.Context, u string) url.Values {
	t.Helper()
	hc := ctx.Value(oauth2.HTTPClient).(*http.Client)
	c := &http.Client{Transport: hc.Transport, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Get(u)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusFound, resp.StatusCode)
	loc, err := resp.Location()
	require.NoError(t, err)
	return loc.Query()
}

// login runs the authorization code flow for scopes and returns the token.
func login(t *testing.T, ctx context.Context, srv *Server, scopes ...string) *oauth2.Token {
	t.Helper()
	cfg := client(srv, scopes...)
	verifier := oauth2.GenerateVerifier()
	q := authorize(t, ctx, cfg.AuthCodeURL("st", oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("resource", testResource)))
	assert.Equal(t, "st", q.Get("state"), "state echoed")
	assert.Equal(t, srv.URL, q.Get("iss"), "RFC 9207 iss")
	require.NotEmpty(t, q.Get("code"), q.Get("error_description"))
	tok, err := cfg.Exchange(ctx, q.Get("code"), oauth2.VerifierOption(verifier), oauth2.SetAuthURLParam("resource", testResource))
	require.NoError(t, err)
	return tok
}

// refresh sends a refresh_token grant request with extra form values and
// returns the token response's fields.
func refresh(t *testing.T, ctx context.Context, srv *Server, rt string, extra url.Values) map[string]any {
	t.Helper()
	form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "client_id": {"cli"}}
	for k, v := range extra {
		form[k] = v
	}
	resp, err := ctx.Value(oauth2.HTTPClient).(*http.Client).PostForm(srv.TokenEndpoint(), form)
	require.NoError(t, err)
	defer resp.Body.Close()
	var body map[string]any
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&body))
	return body
}

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestCodeFlowAndRefreshTokenOnlyForOfflineAccess(t *testing.T) {
	srv, ctx := newServer(t)
	tok := login(t, ctx, srv, "mcp:read")
	assert.Empty(t, tok.RefreshToken, "no offline_access, no refresh token")
	info, err := srv.Verify(tok.AccessToken, testResource)
	require.NoError(t, err)
	assert.Equal(t, []string{"mcp:read"}, info.Scopes)
	_, err = srv.Verify(tok.AccessToken, "http://127.0.0.1:2/other")
	assert.ErrorIs(t, err, ErrInvalidToken, "audience-bound (RFC 8707)")

	tok = login(t, ctx, srv, "mcp:read", "offline_access")
	assert.NotEmpty(t, tok.RefreshToken)
	assert.Equal(t, "mcp:read offline_access", tok.Extra("scope"))
	assert.Equal(t, 2, srv.Stats().ConsentPrompts)
	assert.Equal(t, 2, srv.Stats().CodeExchanges())
}

func TestPKCEResourceAndCodeChecked(t *testing.T) {
	srv, ctx := newServer(t)
	cfg := client(srv, "mcp:read")
	verifier := oauth2.GenerateVerifier()

	q := authorize(t, ctx, cfg.AuthCodeURL("s", oauth2.SetAuthURLParam("resource", testResource)))
	assert.Equal(t, "invalid_request", q.Get("error"), "PKCE is required")
	q = authorize(t, ctx, cfg.AuthCodeURL("s", oauth2.S256ChallengeOption(verifier)))
	assert.Equal(t, "invalid_target", q.Get("error"), "resource is required")
	q = authorize(t, ctx, cfg.AuthCodeURL("s", oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("resource", "http://127.0.0.1:9/x")))
	assert.Equal(t, "invalid_target", q.Get("error"), "unknown resource")

	q = authorize(t, ctx, cfg.AuthCodeURL("s", oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("resource", testResource)))
	_, err := cfg.Exchange(ctx, q.Get("code"), oauth2.VerifierOption(oauth2.GenerateVerifier()), oauth2.SetAuthURLParam("resource", testResource))
	assert.ErrorContains(t, err, "invalid_grant", "a wrong verifier is refused")
	_, err = cfg.Exchange(ctx, q.Get("code"), oauth2.VerifierOption(verifier), oauth2.SetAuthURLParam("resource", testResource))
	assert.ErrorContains(t, err, "invalid_grant", "a code is single-use, even after a failed redemption")
}

func TestRefreshRotatesAndNeverWidens(t *testing.T) {
	srv, ctx := newServer(t)
	tok := login(t, ctx, srv, "mcp:read", "offline_access")

	// RFC 6749 §6: a refresh asking for a scope not granted is refused.
	got := refresh(t, ctx, srv, tok.RefreshToken, url.Values{"scope": {"mcp:read offline_access mcp:write"}})
	assert.Equal(t, "invalid_scope", got["error"])

	next := refresh(t, ctx, srv, tok.RefreshToken, url.Values{"resource": {testResource}})
	require.Nil(t, next["error"], next["error_description"])
	assert.NotEqual(t, tok.RefreshToken, next["refresh_token"], "rotated")
	assert.Equal(t, "mcp:read offline_access", next["scope"])

	// Reusing the rotated-out token revokes the grant, the new tokens too.
	assert.Equal(t, "invalid_grant", refresh(t, ctx, srv, tok.RefreshToken, nil)["error"])
	assert.Equal(t, "invalid_grant", refresh(t, ctx, srv, next["refresh_token"].(string), nil)["error"], "the whole grant is revoked")
	_, err := srv.Verify(next["access_token"].(string), testResource)
	assert.ErrorIs(t, err, ErrInvalidToken)
	assert.Equal(t, 1, srv.Stats().ReusedRefreshTokens)
}

func TestConsentDeclineAndPartialGrant(t *testing.T) {
	srv, ctx := newServer(t)
	cfg := client(srv, "mcp:read", "mcp:write")
	srv.SetConsent(Decline())
	q := authorize(t, ctx, cfg.AuthCodeURL("s", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()), oauth2.SetAuthURLParam("resource", testResource)))
	assert.Equal(t, "access_denied", q.Get("error"))
	assert.Equal(t, "s", q.Get("state"))

	srv.SetConsent(GrantOnly("mcp:read"))
	tok := login(t, ctx, srv, "mcp:read", "mcp:write")
	assert.Equal(t, "mcp:read", tok.Extra("scope"), "the token response says what was granted (RFC 6749 §5.1)")
	assert.Equal(t, Stats{ConsentPrompts: 2, Declined: 1, TokenRequests: map[string]int{"authorization_code": 1}, AccessTokens: 1}, srv.Stats())
}
