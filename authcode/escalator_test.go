package authcode_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"golang.org/x/oauth2"

	"github.com/stepup-go/stepup"
	"github.com/stepup-go/stepup/authcode"
	"github.com/stepup-go/stepup/discovery"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// world is an authorization server, a resource server, and a client that
// reaches the resource through a stepup.Transport with an authcode
// Escalator.
type world struct {
	as     *authServer
	rs     *resourceServer
	disc   *discovery.Client
	esc    *authcode.Escalator
	ts     *stepup.TokenSource
	client *http.Client
}

func newWorld(t *testing.T) *world {
	w := &world{as: newAuthServer(t)}
	w.rs = newResourceServer(t, w.as)
	w.disc = &discovery.Client{RetryWaitMin: time.Millisecond, RetryWaitMax: 5 * time.Millisecond}
	t.Cleanup(w.disc.CloseIdleConnections)
	w.esc = &authcode.Escalator{Receiver: &authcode.Headless{}, Discovery: w.disc}
	var err error
	w.ts, err = stepup.NewTokenSource(w.rs.resource, nil, stepup.WithEscalator(w.esc))
	require.NoError(t, err)
	base := http.DefaultTransport.(*http.Transport).Clone()
	t.Cleanup(base.CloseIdleConnections)
	w.client = &http.Client{Transport: &stepup.Transport{Base: base, Source: w.ts}}
	return w
}

func (w *world) get(t *testing.T, path string) (int, string, error) {
	t.Helper()
	resp, err := w.client.Get(w.rs.srv.URL + path)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(b), nil
}

func scopeOf(q url.Values) []string { return strings.Fields(q.Get("scope")) }

// The full step-up round: 401 → login → 403 insufficient_scope → consent
// for the union of the scopes → replay; the 403 gets no refresh (RFC 6749
// §6: a refresh cannot widen the grant).
func TestStepUpRound(t *testing.T) {
	w := newWorld(t)
	w.rs.initialScope = "read"
	w.rs.needs["/mcp/tools/write"] = "write"

	status, body, err := w.get(t, "/mcp/tools/read")
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, status)
	assert.Equal(t, "ok /mcp/tools/read", body)

	status, body, err = w.get(t, "/mcp/tools/write")
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, status)
	assert.Equal(t, "ok /mcp/tools/write", body)

	auths := w.as.AuthorizationRequests()
	require.Len(t, auths, 2, "one login, one step-up")
	assert.ElementsMatch(t, []string{"read", "offline_access"}, scopeOf(auths[0]), "the challenge's scope, and offline_access, which the server lists")
	assert.Subset(t, scopeOf(auths[1]), []string{"read", "write"}, "the step-up asks for what was requested and what was challenged")
	assert.Equal(t, []string{"authorization_code", "authorization_code"}, w.as.GrantTypes(), "no refresh for the 403")

	for i, q := range auths {
		assert.Equal(t, []string{w.rs.resource}, q["resource"], "RFC 8707 resource in authorization request %d", i)
		assert.Equal(t, "S256", q.Get("code_challenge_method"))
	}
	assert.NotEqual(t, auths[0].Get("code_challenge"), auths[1].Get("code_challenge"), "a fresh PKCE verifier per attempt")
	assert.NotEqual(t, auths[0].Get("state"), auths[1].Get("state"), "a fresh state per attempt")
	for _, tr := range w.as.TokenRequests() {
		assert.Equal(t, []string{w.rs.resource}, tr.Form["resource"], "RFC 8707 resource in the token request")
		assert.NotEmpty(t, tr.Form.Get("code_verifier"))
	}
	assert.Equal(t, 1, w.as.Stats().Registrations, "registered once, kept for the issuer")

	requested, granted := w.ts.Scopes()
	assert.Subset(t, []string(requested), []string{"read", "write", "offline_access"})
	assert.Subset(t, []string(granted), []string{"read", "write"})
}

// After a dynamic registration, the source refreshes with the registered
// client's credentials and the resource, with nothing wired by the user.
func TestRefreshWithRegisteredClient(t *testing.T) {
	w := newWorld(t)
	w.as.AuthMethods = []string{"client_secret_basic"} // so that the registration has a secret
	w.rs.initialScope = "read"

	status, _, err := w.get(t, "/mcp/a")
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, status)
	first, err := w.ts.Token()
	require.NoError(t, err)
	require.NotEmpty(t, first.RefreshToken, "offline_access brought a refresh token")

	w.as.ExpireAccessTokens() // the resource now answers 401 invalid_token
	status, _, err = w.get(t, "/mcp/b")
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, status)

	trs := w.as.TokenRequests()
	require.Len(t, trs, 2)
	code, refresh := trs[0], trs[1]
	assert.Equal(t, "refresh_token", refresh.Form.Get("grant_type"))
	assert.Equal(t, code.ClientID, refresh.ClientID, "the registered client")
	assert.True(t, strings.HasPrefix(refresh.ClientID, "client-"), "a client the server registered: %s", refresh.ClientID)
	assert.True(t, refresh.BasicAuth && refresh.ClientSecretOK, "with its secret, as client_secret_basic")
	assert.Equal(t, []string{w.rs.resource}, refresh.Form["resource"])
	assert.False(t, refresh.Form.Has("scope"), "a refresh asks for the grant as it is")
	assert.Len(t, w.as.AuthorizationRequests(), 1, "no second login")

	second, err := w.ts.Token()
	require.NoError(t, err)
	assert.NotEqual(t, first.RefreshToken, second.RefreshToken, "the server rotated the refresh token, and the source kept the new one")
}

// RFC 9470 acr_values and max_age, and OpenID Connect claims, reach the
// authorization request.
func TestACRAndClaimsReachAuthorizationRequest(t *testing.T) {
	w := newWorld(t)
	w.rs.needsACR["/mcp/pay"] = "urn:high"
	claims := `{"id_token":{"acr":{"essential":true,"values":["urn:high"]}}}`
	w.rs.needsClaims["/mcp/audit"] = claims

	status, _, err := w.get(t, "/mcp/pay")
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, status)
	auths := w.as.AuthorizationRequests()
	require.Len(t, auths, 2)
	assert.False(t, auths[0].Has("acr_values"))
	assert.Equal(t, "urn:high", auths[1].Get("acr_values"))
	assert.Equal(t, "0", auths[1].Get("max_age"))

	w2 := newWorld(t)
	w2.rs.needsClaims["/mcp/audit"] = claims
	status, _, err = w2.get(t, "/mcp/audit")
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, status)
	auths = w2.as.AuthorizationRequests()
	require.Len(t, auths, 2)
	assert.JSONEq(t, claims, auths[1].Get("claims"))
}

// RFC 9207: an iss that is not the issuer the request went to is refused
// before the code is redeemed; so is a missing iss when the metadata
// promises one.
func TestIssuerChecked(t *testing.T) {
	for _, tc := range []struct {
		name     string
		issParam bool
		sendIss  string
		ok       bool
	}{
		{"iss matches", true, "", true},
		{"no iss, none promised", false, "", true},
		{"iss of another server", true, "https://attacker.example", false},
		{"iss unpromised but wrong", false, "https://attacker.example", false},
		{"iss with a trailing slash", false, "{issuer}/", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t)
			w.as.IssParameter = tc.issParam
			w.as.SendIss = strings.ReplaceAll(tc.sendIss, "{issuer}", w.as.IssuerID())
			_, _, err := w.get(t, "/mcp/x")
			if tc.ok {
				require.NoError(t, err)
				assert.Equal(t, []string{"authorization_code"}, w.as.GrantTypes())
				return
			}
			assert.ErrorIs(t, err, authcode.ErrIssuerMismatch)
			assert.Empty(t, w.as.TokenRequests(), "the code is not redeemed")
		})
	}

	t.Run("iss promised but missing", func(t *testing.T) {
		w := newWorld(t)
		w.as.IssParameter = true
		// A server whose metadata promises iss but whose responses lack it.
		srv := w.as.HTTP.Config.Handler
		w.as.HTTP.Config.Handler = http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/authorize" {
				srv.ServeHTTP(rw, r)
				return
			}
			rec := &locationRewriter{ResponseWriter: rw, drop: "iss"}
			srv.ServeHTTP(rec, r)
		})
		_, _, err := w.get(t, "/mcp/x")
		assert.ErrorIs(t, err, authcode.ErrIssuerMismatch)
		assert.Empty(t, w.as.TokenRequests())
	})
}

// locationRewriter drops a parameter from the Location of a redirect.
type locationRewriter struct {
	http.ResponseWriter
	drop string
}

func (l *locationRewriter) WriteHeader(status int) {
	if loc, err := url.Parse(l.Header().Get("Location")); err == nil {
		q := loc.Query()
		q.Del(l.drop)
		loc.RawQuery = q.Encode()
		l.Header().Set("Location", loc.String())
	}
	l.ResponseWriter.WriteHeader(status)
}

func TestStateChecked(t *testing.T) {
	w := newWorld(t)
	w.as.SendState = "forged"
	_, _, err := w.get(t, "/mcp/x")
	assert.ErrorIs(t, err, authcode.ErrStateMismatch)
	assert.Empty(t, w.as.TokenRequests())
}

// MCP: a server whose metadata does not list S256 is refused; no
// authorization request is made.
func TestNoS256Refused(t *testing.T) {
	w := newWorld(t)
	w.as.NoPKCE = true
	_, _, err := w.get(t, "/mcp/x")
	assert.ErrorIs(t, err, authcode.ErrNoPKCE)
	assert.Empty(t, w.as.AuthorizationRequests())
	assert.Zero(t, w.as.Stats().Registrations)
}

// access_denied and RFC 9470 unmet_authentication_requirements are
// refusals: stepup.ErrDeclined.
func TestDeclined(t *testing.T) {
	for _, code := range []string{"access_denied", "unmet_authentication_requirements"} {
		w := newWorld(t)
		w.as.SetConsent(func([]string, url.Values) ([]string, string) { return nil, code })
		_, _, err := w.get(t, "/mcp/x")
		assert.ErrorIs(t, err, stepup.ErrDeclined, code)
		var ae *authcode.AuthorizationError
		require.ErrorAs(t, err, &ae)
		assert.Equal(t, code, ae.Code)
		assert.Empty(t, w.as.TokenRequests())
	}
	w := newWorld(t)
	w.as.SetConsent(func([]string, url.Values) ([]string, string) { return nil, "server_error" })
	_, _, err := w.get(t, "/mcp/x")
	assert.NotErrorIs(t, err, stepup.ErrDeclined)
	var ae *authcode.AuthorizationError
	assert.ErrorAs(t, err, &ae)
}

// MCP scope selection: the challenge's scope; else the resource's
// scopes_supported; else none. The Grant says what was requested.
func TestScopeSelection(t *testing.T) {
	w := newWorld(t)
	w.rs.scopesSupported = []string{"read", "write"}
	w.esc.NoOfflineAccess = true
	_, _, err := w.get(t, "/mcp/x")
	require.NoError(t, err)
	require.Len(t, w.as.AuthorizationRequests(), 1)
	assert.Equal(t, "read write", w.as.AuthorizationRequests()[0].Get("scope"))
	requested, _ := w.ts.Scopes()
	assert.Equal(t, stepup.Scopes{"read", "write"}, requested, "the source learns what was requested")

	w = newWorld(t)
	w.esc.NoOfflineAccess = true
	_, _, err = w.get(t, "/mcp/x")
	require.NoError(t, err)
	assert.False(t, w.as.AuthorizationRequests()[0].Has("scope"), "no scope at all")

	w = newWorld(t)
	w.as.ScopesSupported = []string{"read"} // no offline_access
	w.rs.initialScope = "read"
	_, _, err = w.get(t, "/mcp/x")
	require.NoError(t, err)
	assert.Equal(t, "read", w.as.AuthorizationRequests()[0].Get("scope"), "offline_access only when the server lists it")
}

// Pre-registered clients authenticate by their method.
func TestPreRegisteredClient(t *testing.T) {
	for _, method := range []string{authcode.AuthMethodBasic, authcode.AuthMethodPost, authcode.AuthMethodNone} {
		t.Run(method, func(t *testing.T) {
			w := newWorld(t)
			w.as.NoRegistration = true
			w.as.AuthMethods = []string{method}
			secret := "s3cret:&=?"
			if method == authcode.AuthMethodNone {
				secret = ""
			}
			preRegister(w.as, "cli", secret, method, authcode.DefaultHeadlessRedirectURI)
			w.esc.Client = &authcode.Registration{ClientID: "cli", ClientSecret: secret}
			status, _, err := w.get(t, "/mcp/x")
			require.NoError(t, err)
			assert.Equal(t, http.StatusOK, status)
			trs := w.as.TokenRequests()
			require.Len(t, trs, 1)
			assert.Equal(t, method, trs[0].AuthMethod)
			assert.Equal(t, "cli", trs[0].ClientID)
			assert.Equal(t, method != authcode.AuthMethodNone, trs[0].ClientSecretOK)
		})
	}

	w := newWorld(t)
	w.as.NoRegistration = true
	_, _, err := w.get(t, "/mcp/x")
	assert.ErrorIs(t, err, authcode.ErrNoClient)

	w = newWorld(t)
	preRegister(w.as, "cli", "", "none", authcode.DefaultHeadlessRedirectURI)
	w.esc.Client = &authcode.Registration{Issuer: "https://other.example", ClientID: "cli"}
	_, _, err = w.get(t, "/mcp/x")
	require.NoError(t, err)
	assert.Equal(t, 1, w.as.Stats().Registrations, "a client pre-registered at another issuer is not used here")
}

// With a server that accepts client ID metadata documents, the document's
// URL is the client_id, and nothing is registered.
func TestClientMetadataDocument(t *testing.T) {
	w := newWorld(t)
	w.as.CIMD = true
	w.esc.ClientMetadataURL = "https://client.example/stepup.json"
	status, _, err := w.get(t, "/mcp/x")
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, status)
	assert.Equal(t, "https://client.example/stepup.json", w.as.AuthorizationRequests()[0].Get("client_id"))
	assert.Zero(t, w.as.Stats().Registrations)
	trs := w.as.TokenRequests()
	require.Len(t, trs, 1)
	assert.Equal(t, authcode.AuthMethodNone, trs[0].AuthMethod)

	w = newWorld(t)
	w.esc.ClientMetadataURL = "https://client.example/stepup.json"
	_, _, err = w.get(t, "/mcp/x")
	require.NoError(t, err)
	assert.Equal(t, 1, w.as.Stats().Registrations, "a server without support gets a dynamic registration")

	w = newWorld(t)
	w.as.CIMD = true
	w.esc.ClientMetadataURL = "http://client.example/stepup.json"
	_, _, err = w.get(t, "/mcp/x")
	assert.ErrorContains(t, err, "not an https URL")
}

// A metadata document for another resource is refused: no authorization
// request (the MCP conformance suite's resource-mismatch).
func TestResourceMismatchNoAuthorization(t *testing.T) {
	w := newWorld(t)
	h := w.rs.srv.Config.Handler
	w.rs.srv.Config.Handler = http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/.well-known/") {
			writeJSON(rw, http.StatusOK, map[string]any{"resource": "https://evil.example.com/mcp", "authorization_servers": []string{w.as.IssuerID()}})
			return
		}
		h.ServeHTTP(rw, r)
	})
	_, _, err := w.get(t, "/mcp/x")
	assert.ErrorIs(t, err, discovery.ErrMismatch)
	assert.Empty(t, w.as.AuthorizationRequests())
	assert.Zero(t, w.as.Stats().MetadataRequests, "the authorization server is not even asked")
}

// A document at the root well-known URL naming the origin is used, and
// its resource is the one sent.
func TestRootMetadataNamingOrigin(t *testing.T) {
	w := newWorld(t)
	h := w.rs.srv.Config.Handler
	w.rs.srv.Config.Handler = stripMetadataParam(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/.well-known/oauth-protected-resource":
			writeJSON(rw, http.StatusOK, map[string]any{"resource": w.rs.srv.URL, "authorization_servers": []string{w.as.IssuerID()}})
		case "/.well-known/oauth-protected-resource/mcp":
			http.NotFound(rw, r)
		default:
			h.ServeHTTP(rw, r)
		}
	}))
	w.as.SetResource(w.rs.srv.URL) // tokens are for the origin now
	w.rs.resource = w.rs.srv.URL
	status, _, err := w.get(t, "/mcp/x")
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, status)
	assert.Equal(t, []string{w.rs.srv.URL}, w.as.AuthorizationRequests()[0]["resource"])
}

// stripMetadataParam removes resource_metadata from challenges.
func stripMetadataParam(h http.Handler) http.Handler {
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(&challengeRewriter{ResponseWriter: rw}, r)
	})
}

type challengeRewriter struct{ http.ResponseWriter }

func (c *challengeRewriter) WriteHeader(status int) {
	if ch := c.Header().Get("WWW-Authenticate"); ch != "" {
		parts := strings.Split(ch, ", ")
		kept := parts[:0]
		for _, p := range parts {
			if !strings.Contains(p, "resource_metadata=") {
				kept = append(kept, p)
			} else if strings.HasPrefix(p, "Bearer ") {
				kept = append(kept, "Bearer")
			}
		}
		c.Header().Set("WWW-Authenticate", strings.Replace(strings.Join(kept, ", "), "Bearer, ", "Bearer ", 1))
	}
	c.ResponseWriter.WriteHeader(status)
}

// Private and link-local targets named by metadata are refused; nothing
// is sent there.
func TestPrivateTargetsRefused(t *testing.T) {
	for _, issuer := range []string{"https://10.0.0.8", "http://169.254.169.254/latest", "https://[fe80::1]"} {
		w := newWorld(t)
		h := w.rs.srv.Config.Handler
		w.rs.srv.Config.Handler = http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
			if strings.HasPrefix(r.URL.Path, "/.well-known/") {
				writeJSON(rw, http.StatusOK, map[string]any{"resource": w.rs.resource, "authorization_servers": []string{issuer}})
				return
			}
			h.ServeHTTP(rw, r)
		})
		_, _, err := w.get(t, "/mcp/x")
		assert.ErrorIs(t, err, discovery.ErrRefusedTarget, issuer)
	}
}

// Calling Escalate directly, as a program that manages its own tokens
// would: the Grant carries the token, the scopes requested, the issuer,
// and a refresh that works.
func TestEscalateDirectly(t *testing.T) {
	w := newWorld(t)
	w.as.AuthMethods = []string{"client_secret_post"}
	ctx := context.Background()
	g, err := w.esc.Escalate(ctx, &stepup.EscalationRequest{
		Reason:           stepup.ReasonAuthorizationRequired,
		Scopes:           stepup.Scopes{"read"},
		MaxAge:           stepup.NoMaxAge,
		Resource:         w.rs.resource,
		ResourceMetadata: w.rs.metadataURL(),
	})
	require.NoError(t, err)
	assert.Equal(t, w.as.IssuerID(), g.Issuer)
	assert.Equal(t, stepup.Scopes{"read", "offline_access"}, g.Scopes)
	assert.Equal(t, "read offline_access", g.Token.Extra("scope"))
	require.NotNil(t, g.Refresh)
	assert.False(t, w.as.AuthorizationRequests()[0].Has("max_age"))

	tok, err := g.Refresh(ctx, g.Token, "ignored: the resource authorized for is sent")
	require.NoError(t, err)
	assert.NotEqual(t, g.Token.AccessToken, tok.AccessToken)
	trs := w.as.TokenRequests()
	require.Len(t, trs, 2)
	assert.Equal(t, "client_secret_post", trs[1].AuthMethod)
	assert.True(t, trs[1].ClientSecretOK)
	assert.Equal(t, []string{w.rs.resource}, trs[1].Form["resource"])

	_, err = g.Refresh(ctx, g.Token, "")
	var re *oauth2.RetrieveError
	require.ErrorAs(t, err, &re, "the rotated refresh token is refused")
	assert.Equal(t, "invalid_grant", re.ErrorCode)
}

// A token response whose type is not Bearer is not used (RFC 6749 §7.1).
func TestTokenTypeChecked(t *testing.T) {
	w := newWorld(t)
	h := w.as.HTTP.Config.Handler
	w.as.HTTP.Config.Handler = http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/token" {
			writeJSON(rw, http.StatusOK, map[string]any{"access_token": "x", "token_type": "mac"})
			return
		}
		h.ServeHTTP(rw, r)
	})
	_, _, err := w.get(t, "/mcp/x")
	assert.ErrorContains(t, err, "not Bearer")
}

// The headless receiver needs a server that redirects at once; a login
// page is an error, not a hang.
func TestHeadlessNeedsRedirect(t *testing.T) {
	w := newWorld(t)
	h := w.as.HTTP.Config.Handler
	w.as.HTTP.Config.Handler = http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/authorize" {
			http.Redirect(rw, r, "/login", http.StatusFound)
			return
		}
		if r.URL.Path == "/login" {
			io.WriteString(rw, "<form>password?</form>")
			return
		}
		h.ServeHTTP(rw, r)
	})
	_, _, err := w.get(t, "/mcp/x")
	assert.ErrorContains(t, err, "200 OK, not a redirect")
}

func TestErrorsPrintSafely(t *testing.T) {
	e := &authcode.AuthorizationError{Code: "access_denied", Description: "no\r\n<script>" + strings.Repeat("x", 500)}
	msg := e.Error()
	assert.NotContains(t, msg, "\n")
	assert.Less(t, len(msg), 300)
	assert.True(t, errors.Is(e, stepup.ErrDeclined))

	r := &authcode.RegistrationError{StatusCode: 400, Code: "invalid_redirect_uri", Description: "bad"}
	assert.Equal(t, `authcode: client registration answered 400 "invalid_redirect_uri": "bad"`, r.Error())
}

func TestRegistrationStore(t *testing.T) {
	var s authcode.MemoryRegistrations
	ctx := context.Background()
	r, err := s.LoadRegistration(ctx, "https://as")
	require.NoError(t, err)
	assert.Nil(t, r)
	in := &authcode.Registration{Issuer: "https://as", ClientID: "c", RedirectURIs: []string{"http://127.0.0.1/cb"}}
	require.NoError(t, s.SaveRegistration(ctx, in))
	in.RedirectURIs[0] = "changed"
	r, err = s.LoadRegistration(ctx, "https://as")
	require.NoError(t, err)
	assert.Equal(t, []string{"http://127.0.0.1/cb"}, r.RedirectURIs, "the store keeps a copy")
	b, err := json.Marshal(r)
	require.NoError(t, err)
	assert.Contains(t, string(b), `"ClientID":"c"`)
}

// The first authorization server listed that fits is used; a resource
// listing many gets a few tried, not all.
func TestAuthorizationServerChoice(t *testing.T) {
	serve := func(w *world, issuers []string) {
		h := w.rs.srv.Config.Handler
		w.rs.srv.Config.Handler = http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
			if strings.HasPrefix(r.URL.Path, "/.well-known/") {
				writeJSON(rw, http.StatusOK, map[string]any{"resource": w.rs.resource, "authorization_servers": issuers})
				return
			}
			h.ServeHTTP(rw, r)
		})
	}
	w := newWorld(t)
	serve(w, []string{w.as.IssuerID() + "/gone", w.as.IssuerID()})
	status, _, err := w.get(t, "/mcp/x")
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, status)

	w = newWorld(t)
	serve(w, []string{w.as.IssuerID() + "/a", w.as.IssuerID() + "/b", w.as.IssuerID() + "/c", w.as.IssuerID() + "/d", w.as.IssuerID()})
	_, _, err = w.get(t, "/mcp/x")
	assert.ErrorContains(t, err, "no usable authorization server")
	assert.Empty(t, w.as.AuthorizationRequests())

	// The issuer of the grant held comes first, wherever it is listed.
	w = newWorld(t)
	serve(w, []string{w.as.IssuerID() + "/a", w.as.IssuerID() + "/b", w.as.IssuerID() + "/c", w.as.IssuerID() + "/d", w.as.IssuerID()})
	g, err := w.esc.Escalate(context.Background(), &stepup.EscalationRequest{
		Reason: stepup.ReasonInsufficientScope, Scopes: stepup.Scopes{"read"}, MaxAge: stepup.NoMaxAge,
		Resource: w.rs.resource, ResourceMetadata: w.rs.metadataURL(), Issuer: w.as.IssuerID(),
	})
	require.NoError(t, err)
	assert.Equal(t, w.as.IssuerID(), g.Issuer)

	w = newWorld(t)
	serve(w, []string{w.as.IssuerID() + "/a", w.as.IssuerID()})
	w.esc.AuthorizationServer = w.as.IssuerID() + "/a"
	_, _, err = w.get(t, "/mcp/x")
	assert.ErrorIs(t, err, discovery.ErrNotFound, "only the issuer chosen is tried")
}
