package oauthtest

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"
)

// get sends GET u through ctx's client without following a redirect.
func get(t *testing.T, srv *Server, u string) *http.Response {
	t.Helper()
	c := &http.Client{Transport: srv.HTTP.Client().Transport, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Get(u)
	require.NoError(t, err)
	resp.Body.Close()
	return resp
}

// register registers a client with metadata m and returns its ID.
func register(t *testing.T, srv *Server, m map[string]any) string {
	t.Helper()
	b, _ := json.Marshal(m)
	resp, err := srv.HTTP.Client().Post(srv.RegistrationEndpoint(), "application/json", bytes.NewReader(b))
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusCreated, resp.StatusCode)
	var reg map[string]any
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&reg))
	return reg["client_id"].(string)
}

func TestStateRequired(t *testing.T) {
	srv, ctx := newServer(t)
	q := authorize(t, ctx, client(srv).AuthCodeURL("", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()), oauth2.SetAuthURLParam("resource", testResource)))
	assert.Equal(t, "invalid_request", q.Get("error"))
	assert.Equal(t, "state is required", q.Get("error_description"))
}

// RFC 8252 §7.3: a native client's loopback redirect URI may change its
// port; a web client is held to the URI it registered (OpenID Connect
// Dynamic Client Registration 1.0 §2: web is the default).
func TestRedirectURIsOfNativeAndWebClients(t *testing.T) {
	srv := Start(t, Config{})
	native := register(t, srv, map[string]any{"redirect_uris": []string{"http://127.0.0.1/cb"}, "token_endpoint_auth_method": "none", "application_type": "native"})
	web := register(t, srv, map[string]any{"redirect_uris": []string{"http://127.0.0.1/cb"}, "token_endpoint_auth_method": "none"})
	authURL := func(client string) string {
		cfg := &oauth2.Config{ClientID: client, Endpoint: oauth2.Endpoint{AuthURL: srv.AuthorizationEndpoint()}, RedirectURL: "http://127.0.0.1:4242/cb"}
		return cfg.AuthCodeURL("s", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()), oauth2.SetAuthURLParam("resource", testResource))
	}
	assert.Equal(t, http.StatusFound, get(t, srv, authURL(native)).StatusCode)
	assert.Equal(t, http.StatusBadRequest, get(t, srv, authURL(web)).StatusCode, "shown, never redirected (RFC 6749 §4.1.2.1)")
	assert.Len(t, srv.RegistrationRequests(), 2)
}

func TestOpenIDProvider(t *testing.T) {
	srv, ctx := newServer(t)
	srv.OpenID = true
	assert.Equal(t, http.StatusNotFound, get(t, srv, srv.URL+"/.well-known/oauth-authorization-server").StatusCode)
	assert.Equal(t, http.StatusOK, get(t, srv, srv.URL+"/.well-known/openid-configuration").StatusCode)

	cfg := client(srv, "mcp:read")
	q := authorize(t, ctx, cfg.AuthCodeURL("s", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()),
		oauth2.SetAuthURLParam("resource", testResource), oauth2.SetAuthURLParam("acr_values", "urn:high")))
	assert.Equal(t, "invalid_request", q.Get("error"), "acr_values without openid")

	// OpenID Connect Core 1.0 §11: offline_access only with prompt=consent.
	tok := login(t, ctx, srv, "openid", "offline_access")
	assert.Equal(t, "openid", tok.Extra("scope"))
	assert.Empty(t, tok.RefreshToken)
}

// RFC 9126: the request pushed is the one authorized, once; what the
// authorization endpoint would refuse is refused when pushed.
func TestPushedAuthorizationRequest(t *testing.T) {
	srv, ctx := newServer(t)
	srv.PAR = true
	verifier := oauth2.GenerateVerifier()
	form := url.Values{"client_id": {"cli"}, "response_type": {"code"}, "redirect_uri": {testRedirect}, "state": {"s"},
		"code_challenge": {oauth2.S256ChallengeFromVerifier(verifier)}, "code_challenge_method": {"S256"}, "resource": {testResource}, "scope": {"mcp:read"}}
	push := func(f url.Values) (int, map[string]any) {
		resp, err := srv.HTTP.Client().PostForm(srv.URL+"/par", f)
		require.NoError(t, err)
		defer resp.Body.Close()
		var m map[string]any
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&m))
		return resp.StatusCode, m
	}
	bad := url.Values{}
	for k, v := range form {
		bad[k] = v
	}
	bad.Del("state")
	status, m := push(bad)
	assert.Equal(t, http.StatusBadRequest, status)
	assert.Equal(t, "invalid_request", m["error"])

	status, m = push(form)
	require.Equal(t, http.StatusCreated, status)
	uri := m["request_uri"].(string)
	u := srv.AuthorizationEndpoint() + "?" + url.Values{"client_id": {"cli"}, "request_uri": {uri}}.Encode()
	q := authorize(t, ctx, u)
	require.NotEmpty(t, q.Get("code"))
	assert.Equal(t, "s", q.Get("state"))
	assert.Equal(t, http.StatusBadRequest, get(t, srv, u).StatusCode, "a request_uri is used once")
	assert.Len(t, srv.PushedRequests(), 2)
}

// SingleGrant: each grant supersedes the earlier ones; their refresh
// tokens count as used.
func TestSingleGrant(t *testing.T) {
	srv, ctx := newServer(t)
	srv.SingleGrant = true
	first := srv.Issue(Grant{ClientID: "cli", Resource: testResource, Scopes: []string{"mcp:read"}, Refresh: true})
	second := login(t, ctx, srv, "mcp:read", "offline_access")
	_, active := srv.Introspect(first.AccessToken)
	assert.False(t, active, "superseded")
	info, active := srv.Introspect(second.AccessToken)
	require.True(t, active)
	assert.Equal(t, 2, info.Serial)
	assert.Equal(t, "invalid_grant", refresh(t, ctx, srv, first.RefreshToken, nil)["error"])
	_, active = srv.Introspect(second.AccessToken)
	assert.False(t, active, "the reuse revoked the grant")
	assert.Equal(t, 1, srv.Stats().ReusedRefreshTokens)
}

func TestNoRotationRefreshAlwaysAndTokenHook(t *testing.T) {
	srv, ctx := newServer(t)
	srv.NoRotation, srv.RefreshAlways, srv.TokenMark = true, true, "MARK"
	tok := login(t, ctx, srv, "mcp:read")
	require.NotEmpty(t, tok.RefreshToken, "RefreshAlways: without offline_access too")
	assert.Contains(t, tok.AccessToken, "MARK")
	for range 2 {
		got := refresh(t, ctx, srv, tok.RefreshToken, nil)
		require.Nil(t, got["error"])
		assert.Nil(t, got["refresh_token"], "the refresh token is kept")
	}
	srv.TokenHook = func(w http.ResponseWriter, r *http.Request) bool {
		http.Error(w, "down", http.StatusServiceUnavailable)
		return true
	}
	resp, err := srv.HTTP.Client().PostForm(srv.TokenEndpoint(), url.Values{"grant_type": {"refresh_token"}})
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
	assert.Equal(t, []string{"authorization_code", "refresh_token", "refresh_token", "refresh_token"}, srv.GrantTypes())
}

func TestRefreshNeedsResourceAndExpiry(t *testing.T) {
	srv, ctx := newServer(t)
	srv.RefreshNeedsResource = true
	tok := login(t, ctx, srv, "mcp:read", "offline_access")
	assert.Equal(t, "invalid_target", refresh(t, ctx, srv, tok.RefreshToken, nil)["error"])
	srv.ExpireAccessTokens()
	_, active := srv.Introspect(tok.AccessToken)
	assert.False(t, active)
	info, err := srv.Verify(tok.AccessToken, testResource)
	require.NoError(t, err, "Verify leaves expiry to the resource server")
	assert.True(t, info.Expires.Before(time.Now()))
	srv.Revoke(tok.AccessToken)
	_, err = srv.Verify(tok.AccessToken, testResource)
	assert.ErrorIs(t, err, ErrInvalidToken)
	assert.True(t, strings.HasPrefix(tok.AccessToken, "at-"))
}
