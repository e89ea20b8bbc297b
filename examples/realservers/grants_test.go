package realservers_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"golang.org/x/oauth2"

	"github.com/stepup-go/stepup"
	"github.com/stepup-go/stepup/authcode"
	"github.com/stepup-go/stepup/discovery"
	"github.com/stepup-go/stepup/examples/internal/mcpclient"
	"github.com/stepup-go/stepup/examples/internal/mcpserver"
	"github.com/stepup-go/stepup/examples/internal/realserver"
	"github.com/stepup-go/stepup/grants"
)

// register registers a client with the server's registration endpoint
// (RFC 7591), as an operator would with the server's own tools, and
// returns its client_id and client_secret.
func register(t *testing.T, e *env, meta map[string]any) (id, secret string) {
	t.Helper()
	disc := &discovery.Client{}
	t.Cleanup(disc.CloseIdleConnections)
	as, err := disc.AuthServer(context.Background(), e.mcp.URL, e.as.Issuer)
	require.NoError(t, err)
	require.NotEmpty(t, as.RegistrationEndpoint)
	body, err := json.Marshal(meta)
	require.NoError(t, err)
	hc := disc.HTTPClient(e.mcp.URL)
	resp, err := hc.Post(as.RegistrationEndpoint, "application/json", bytes.NewReader(body))
	require.NoError(t, err)
	defer resp.Body.Close()
	var out struct {
		ClientID     string `json:"client_id"`
		ClientSecret string `json:"client_secret"`
		Error        string `json:"error"`
		Description  string `json:"error_description"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&out))
	require.Equal(t, http.StatusCreated, resp.StatusCode, "%s: %s", out.Error, out.Description)
	return out.ClientID, out.ClientSecret
}

// newGrantsEnv is newEnv for the grants' tests, which register their
// clients dynamically (RFC 7591): a server that does not is skipped.
func newGrantsEnv(t *testing.T, srv server) *env {
	e := newEnv(t, srv, 0)
	if !e.as.Features.DynamicRegistration {
		t.Skipf("%s registers no clients dynamically", e.as.Name)
	}
	return e
}

// connectEscalator connects the go-sdk's MCP client through a stepup.Transport
// with esc.
func (e *env) connectEscalator(esc stepup.Escalator) *client {
	t := e.t
	ts, err := stepup.NewTokenSource(e.mcp.URL, nil, stepup.WithEscalator(esc))
	require.NoError(t, err)
	base := &http.Transport{}
	t.Cleanup(base.CloseIdleConnections)
	hc := &http.Client{Transport: &stepup.Transport{Base: base, Source: ts}}
	session, err := mcpclient.Connect(context.Background(), mcpclient.GoSDK, e.mcp.URL, hc, mcpclient.Options{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = session.Close() })
	return &client{ts: ts, session: session}
}

// The client credentials grant against each real server, with each client
// authentication it supports: the first call's 401 gets a token for the
// read scope, the write tool's 403 one for read and write, never a
// refresh, and every token checks at the resource server.
func TestClientCredentialsRealServers(t *testing.T) {
	for _, srv := range servers {
		t.Run(srv.name, func(t *testing.T) {
			for _, method := range []string{grants.MethodBasic, grants.MethodPost} {
				t.Run(method, func(t *testing.T) {
					ignore := goleak.IgnoreCurrent()
					t.Cleanup(func() { goleak.VerifyNone(t, ignore) })
					e := newGrantsEnv(t, srv)
					esc := clientCredentials(t, e, method)
					c := e.connectEscalator(esc)

					c.call(t, mcpserver.ToolRead)
					assert.Equal(t, "saved: hello", c.call(t, mcpserver.ToolWrite))
					c.call(t, mcpserver.ToolRead)
					n := e.as.Counts()
					assert.Equal(t, 2, n.Grants["client_credentials"], "one token, one step-up")
					assert.Zero(t, n.Grants["refresh_token"])
					assert.Zero(t, n.Authorizations, "no person")
					tok, err := c.ts.Token()
					require.NoError(t, err)
					info, err := e.as.Verify(context.Background(), tok.AccessToken)
					require.NoError(t, err)
					assert.Subset(t, info.Scopes, []string{realserver.ScopeRead, realserver.ScopeWrite})
				})
			}
		})
	}
}

// clientCredentials registers a client for the client credentials grant at
// e's server, authenticating with method, and returns its Escalator.
func clientCredentials(t *testing.T, e *env, method string) *grants.ClientCredentials {
	t.Helper()
	meta := map[string]any{
		"grant_types": []string{"client_credentials"}, "response_types": []string{},
		"token_endpoint_auth_method": method,
	}
	esc := &grants.ClientCredentials{Discovery: &discovery.Client{}}
	t.Cleanup(esc.Discovery.CloseIdleConnections)
	if !e.as.Features.ResourceIndicators {
		// Hydra binds tokens to an audience parameter, which the client
		// must be allowed, as its scopes; oidc-provider takes both from
		// the resource (RFC 8707).
		meta["audience"] = []string{e.mcp.URL}
		meta["scope"] = realserver.ScopeRead + " " + realserver.ScopeWrite
		esc.EndpointParams = url.Values{"audience": {e.mcp.URL}}
	}
	id, secret := register(t, e, meta)
	esc.Auth = grants.ClientSecret{ClientID: id, Secret: secret, Method: method}
	return esc
}

// machineStorm is how many concurrent calls draw the same 403 in
// TestClientCredentialsConcurrentStepUpRealServers.
const machineStorm = 1000

// A machine's step-up under load, against each real server: 1,000
// concurrent calls of the write tool draw the same 403 insufficient_scope
// and share one token request for the union; none is refused, and nothing
// is refreshed.
func TestClientCredentialsConcurrentStepUpRealServers(t *testing.T) {
	for _, srv := range servers {
		t.Run(srv.name, func(t *testing.T) {
			ignore := goleak.IgnoreCurrent()
			t.Cleanup(func() { goleak.VerifyNone(t, ignore) })
			e := newGrantsEnv(t, srv)
			c := e.connectEscalator(clientCredentials(t, e, grants.MethodBasic))
			c.call(t, mcpserver.ToolRead)
			before := e.as.Counts()

			parallelN(t, machineStorm, func() error {
				_, err := c.session.CallTool(context.Background(), mcpserver.ToolWrite, map[string]any{"text": "x"})
				return err
			})

			after := e.as.Counts()
			assert.Equal(t, before.Grants["client_credentials"]+1, after.Grants["client_credentials"], "one token request for all")
			assert.Zero(t, after.Grants["refresh_token"])
			assert.Zero(t, after.Authorizations, "no person")
		})
	}
}

// private_key_jwt (RFC 7523 §2.2) against each real server: the client
// registers its public key (RFC 7591 jwks), and every token request
// carries a new assertion. oidc-provider takes the issuer as the
// assertion's audience, as the MCP extension asks; Hydra wants its token
// endpoint, and refuses the issuer.
func TestPrivateKeyJWTRealServers(t *testing.T) {
	for _, srv := range servers {
		t.Run(srv.name, func(t *testing.T) {
			for _, toEndpoint := range []bool{false, true} {
				t.Run(fmt.Sprintf("aud token endpoint %v", toEndpoint), func(t *testing.T) {
					ignore := goleak.IgnoreCurrent()
					t.Cleanup(func() { goleak.VerifyNone(t, ignore) })
					e := newGrantsEnv(t, srv)
					key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
					require.NoError(t, err)
					jwk := jose.JSONWebKey{Key: key.Public(), KeyID: "k1", Algorithm: "ES256", Use: "sig"}
					meta := map[string]any{
						"grant_types": []string{"client_credentials"}, "response_types": []string{},
						"token_endpoint_auth_method":      grants.MethodPrivateKeyJWT,
						"token_endpoint_auth_signing_alg": "ES256",
						"jwks":                            map[string]any{"keys": []jose.JSONWebKey{jwk}},
					}
					esc := &grants.ClientCredentials{Discovery: &discovery.Client{}}
					t.Cleanup(esc.Discovery.CloseIdleConnections)
					if !e.as.Features.ResourceIndicators {
						meta["audience"] = []string{e.mcp.URL}
						meta["scope"] = realserver.ScopeRead + " " + realserver.ScopeWrite
						esc.EndpointParams = url.Values{"audience": {e.mcp.URL}}
					}
					id, _ := register(t, e, meta)
					esc.Auth = grants.PrivateKeyJWT{ClientID: id, Key: key, KeyID: "k1", AudienceTokenEndpoint: toEndpoint}
					if srv.name == "hydra" && !toEndpoint {
						_, err := esc.Escalate(context.Background(), &stepup.EscalationRequest{Resource: e.mcp.URL})
						var te *grants.TokenError
						require.ErrorAs(t, err, &te)
						assert.Equal(t, "invalid_client", te.Code)
						assert.Equal(t, 1, e.as.Counts().Grants["client_credentials"])
						return
					}
					c := e.connectEscalator(esc)
					c.call(t, mcpserver.ToolRead)
					assert.Equal(t, "saved: hello", c.call(t, mcpserver.ToolWrite))
					assert.Equal(t, 2, e.as.Counts().Grants["client_credentials"])
				})
			}
		})
	}
}

// The JWT bearer grant with a workload's own token (RFC 7523 §2.1) against
// the servers that can trust a workload identity issuer (Hydra, through its
// admin API): each new token presents a freshly issued workload token, the
// 403 one for the union; a token from an issuer the server does not trust
// is refused with invalid_grant after one request, no other grant tried.
func TestWorkloadRealServers(t *testing.T) {
	for _, srv := range servers {
		t.Run(srv.name, func(t *testing.T) {
			ignore := goleak.IgnoreCurrent()
			t.Cleanup(func() { goleak.VerifyNone(t, ignore) })
			e := newGrantsEnv(t, srv)
			if e.as.TrustJWTIssuer == nil {
				t.Skipf("%s has no trust for workload identity issuers here", e.as.Name)
			}
			key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			require.NoError(t, err)
			const issuer, subject = "https://ci.example", "repo:stepup:job"
			jwk := jose.JSONWebKey{Key: key.Public(), KeyID: "ci-1", Algorithm: "ES256", Use: "sig"}
			require.NoError(t, e.as.TrustJWTIssuer(context.Background(), issuer, subject, jwk,
				[]string{realserver.ScopeRead, realserver.ScopeWrite}))
			id, _ := register(t, e, map[string]any{
				"grant_types": []string{"urn:ietf:params:oauth:grant-type:jwt-bearer"}, "response_types": []string{},
				"token_endpoint_auth_method": "none",
				"audience":                   []string{e.mcp.URL},
				"scope":                      realserver.ScopeRead + " " + realserver.ScopeWrite,
			})
			disc := &discovery.Client{}
			t.Cleanup(disc.CloseIdleConnections)
			as, err := disc.AuthServer(context.Background(), e.mcp.URL, e.as.Issuer)
			require.NoError(t, err)
			var issued []string
			platform := func(signer *ecdsa.PrivateKey) func(context.Context) (string, error) {
				return func(context.Context) (string, error) {
					tok := signWorkloadToken(t, signer, issuer, subject, as.TokenEndpoint)
					issued = append(issued, tok)
					return tok, nil
				}
			}
			esc := &grants.Workload{
				Token: platform(key), Client: grants.PublicClient{ClientID: id}, Discovery: disc,
				EndpointParams: url.Values{"audience": {e.mcp.URL}},
			}
			c := e.connectEscalator(esc)
			c.call(t, mcpserver.ToolRead)
			assert.Equal(t, "saved: hello", c.call(t, mcpserver.ToolWrite))
			n := e.as.Counts()
			assert.Equal(t, 2, n.Grants["urn:ietf:params:oauth:grant-type:jwt-bearer"])
			assert.Len(t, issued, 2)
			tok, err := c.ts.Token()
			require.NoError(t, err)
			info, err := e.as.Verify(context.Background(), tok.AccessToken)
			require.NoError(t, err)
			assert.Equal(t, subject, info.Subject)
			assert.Subset(t, info.Scopes, []string{realserver.ScopeRead, realserver.ScopeWrite})

			// A key the server does not know: refused, once.
			other, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			require.NoError(t, err)
			bad := &grants.Workload{Token: platform(other), Client: grants.PublicClient{ClientID: id}, Discovery: disc,
				EndpointParams: url.Values{"audience": {e.mcp.URL}}}
			_, err = bad.Escalate(context.Background(), &stepup.EscalationRequest{Resource: e.mcp.URL, Scopes: stepup.Scopes{realserver.ScopeRead}})
			var te *grants.TokenError
			require.ErrorAs(t, err, &te)
			assert.Equal(t, "invalid_grant", te.Code)
			assert.NotContains(t, err.Error(), issued[len(issued)-1])
			after := e.as.Counts()
			assert.Equal(t, 3, after.Grants["urn:ietf:params:oauth:grant-type:jwt-bearer"])
			assert.Len(t, after.Grants, 1, "no other grant tried")
		})
	}
}

// signWorkloadToken signs the token a workload's platform would give it,
// for the audience aud: Hydra wants its token endpoint there (RFC 7523
// §3), a jti and an iat.
func signWorkloadToken(t *testing.T, key *ecdsa.PrivateKey, issuer, subject, aud string) string {
	t.Helper()
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: key, KeyID: "ci-1"}}, nil)
	require.NoError(t, err)
	jti := make([]byte, 16)
	_, _ = rand.Read(jti)
	now := time.Now()
	s, err := jwt.Signed(signer).Claims(jwt.Claims{
		Issuer: issuer, Subject: subject, Audience: jwt.Audience{aud}, ID: fmt.Sprintf("%x", jti),
		IssuedAt: jwt.NewNumericDate(now), Expiry: jwt.NewNumericDate(now.Add(10 * time.Minute)),
	}).Serialize()
	require.NoError(t, err)
	return s
}

// IDTokenFrom with a real OpenID Connect login: the person logs in once
// (authorization code with PKCE, openid offline_access), the ID token of
// the login is taken; once the login's access token has expired, x/oauth2
// refreshes it and the refresh's new ID token is taken, with no new login.
func TestIDTokenFromLogin(t *testing.T) {
	for _, srv := range servers {
		t.Run(srv.name, func(t *testing.T) {
			ignore := goleak.IgnoreCurrent()
			t.Cleanup(func() { goleak.VerifyNone(t, ignore) })
			e := newGrantsEnv(t, srv)
			disc := &discovery.Client{}
			t.Cleanup(disc.CloseIdleConnections)
			ctx := context.WithValue(context.Background(), oauth2.HTTPClient, disc.HTTPClient(e.mcp.URL))
			as, err := disc.AuthServer(ctx, e.mcp.URL, e.as.Issuer)
			require.NoError(t, err)
			var cfg *oauth2.Config
			verifier, state := oauth2.GenerateVerifier(), oauth2.GenerateVerifier()
			params, err := (&authcode.Loopback{Open: e.browser}).Receive(ctx, func(_ context.Context, redirectURI string) (*authcode.AuthorizationRequest, error) {
				meta := map[string]any{
					"redirect_uris": []string{redirectURI}, "application_type": "native",
					"grant_types": []string{"authorization_code", "refresh_token"}, "response_types": []string{"code"},
					"token_endpoint_auth_method": "none",
				}
				if !e.as.Features.ResourceIndicators {
					meta["scope"] = "openid offline_access " + realserver.ScopeRead
				}
				id, _ := register(t, e, meta)
				cfg = &oauth2.Config{
					ClientID: id, RedirectURL: redirectURI, Scopes: []string{"openid", "offline_access", realserver.ScopeRead},
					Endpoint: oauth2.Endpoint{AuthURL: as.AuthorizationEndpoint, TokenURL: as.TokenEndpoint, AuthStyle: oauth2.AuthStyleInParams},
				}
				return &authcode.AuthorizationRequest{
					URL: cfg.AuthCodeURL(state, oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("resource", e.mcp.URL),
						oauth2.SetAuthURLParam("prompt", "consent")), // OpenID Connect Core 1.0 §11: offline_access needs it
					State: state,
				}, nil
			})
			require.NoError(t, err)
			login, err := cfg.Exchange(ctx, params.Get("code"), oauth2.VerifierOption(verifier), oauth2.SetAuthURLParam("resource", e.mcp.URL))
			require.NoError(t, err)
			require.NotEmpty(t, login.RefreshToken)

			first, err := grants.IDTokenFrom(cfg.TokenSource(ctx, login))(ctx)
			require.NoError(t, err)
			assert.Equal(t, login.Extra("id_token"), first)
			login.Expiry = time.Now().Add(-time.Minute)
			ts := cfg.TokenSource(ctx, login)
			second, err := grants.IDTokenFrom(ts)(ctx)
			require.NoError(t, err)
			refreshed, err := ts.Token() // the refresh's token, kept by ts
			require.NoError(t, err)
			assert.NotEqual(t, login.AccessToken, refreshed.AccessToken)
			assert.Equal(t, refreshed.Extra("id_token"), second, "the refresh's ID token")
			n := e.as.Counts()
			assert.Equal(t, 1, n.Authorizations, "one login")
			assert.Equal(t, 1, n.Grants["refresh_token"])
		})
	}
}
