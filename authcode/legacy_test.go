package authcode_test

import (
	"net/http"
	"net/url"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stepup-go/stepup/authcode"
	"github.com/stepup-go/stepup/discovery"
)

// newLegacyWorld is a world whose resource is an MCP 2025-03-26 server: no
// protected resource metadata, no resource_metadata in its challenges, and
// its authorization server on its own origin with the endpoints under
// prefix. With metadata, the RFC 8414 document is at the origin's
// well-known URL and names the issuer origin+prefix, which is not the
// origin the URL was built from. The Escalator allows the fallback.
func newLegacyWorld(t *testing.T, prefix string, metadata bool) *world {
	w := newWorld(t)
	w.rs.noMetadata = true
	w.as.Issuer = w.rs.srv.URL + prefix
	w.as.Base = w.rs.srv.URL + prefix
	mux := http.NewServeMux()
	as := w.as.HTTP.Config.Handler
	if metadata {
		mux.Handle("GET /.well-known/oauth-authorization-server", as)
	}
	mux.Handle("GET "+prefix+"/authorize", http.StripPrefix(prefix, as))
	mux.Handle("POST "+prefix+"/token", http.StripPrefix(prefix, as))
	mux.Handle("POST "+prefix+"/register", http.StripPrefix(prefix, as))
	mux.HandleFunc("/.well-known/", http.NotFound)
	mux.HandleFunc("/mcp/", w.rs.serve)
	w.rs.srv.Config.Handler = mux
	w.esc.AllowLegacyDiscovery = true
	return w
}

// No protected resource metadata, authorization server metadata at the
// origin whose issuer is under /oauth (the conformance suite's
// 2025-03-26-oauth-metadata-backcompat): the login goes through that
// server, with the resource itself as the RFC 8707 resource.
func TestLegacyMetadataAtOrigin(t *testing.T) {
	w := newLegacyWorld(t, "/oauth", true)
	w.rs.initialScope = "read"

	auth := loginOnce(t, w, "/mcp/x")
	assert.ElementsMatch(t, []string{"read", "offline_access"}, scopeOf(auth), "offline_access, which the document lists")
	assert.Equal(t, []string{"authorization_code"}, w.as.GrantTypes())
	assert.Equal(t, 1, w.as.Stats().MetadataRequests)
}

// loginOnce GETs path, which must succeed after one authorization request,
// with PKCE S256 and the resource itself as the RFC 8707 resource, by a
// client registered there; it returns that request.
func loginOnce(t *testing.T, w *world, path string) url.Values {
	t.Helper()
	status, body, err := w.get(t, path)
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, status)
	assert.Equal(t, "ok "+path, body)
	auths := w.as.AuthorizationRequests()
	require.Len(t, auths, 1)
	assert.Equal(t, []string{w.rs.resource}, auths[0]["resource"])
	assert.Equal(t, "S256", auths[0].Get("code_challenge_method"))
	assert.Equal(t, 1, w.as.Stats().Registrations, "registered at the registration endpoint found")
	return auths[0]
}

// Off by default: without protected resource metadata, the strict
// Escalator makes no request to the authorization server at all.
func TestLegacyOffByDefault(t *testing.T) {
	for _, metadata := range []bool{true, false} {
		w := newLegacyWorld(t, "/oauth", metadata)
		w.esc.AllowLegacyDiscovery = false

		_, _, err := w.get(t, "/mcp/x")
		assert.ErrorIs(t, err, discovery.ErrNotFound)
		assert.Empty(t, w.as.AuthorizationRequests())
		assert.Zero(t, w.as.Stats().Registrations)
		assert.Zero(t, w.as.Stats().MetadataRequests)
	}
}

// No metadata at all (the suite's 2025-03-26-oauth-endpoint-fallback):
// /authorize, /token and /register on the resource's origin, PKCE S256,
// and a refresh through the client registered there.
func TestLegacyDefaultEndpoints(t *testing.T) {
	w := newLegacyWorld(t, "", false)
	w.rs.initialScope = "read offline_access"

	loginOnce(t, w, "/mcp/x")

	w.as.ExpireAccessTokens()
	status, _, err := w.get(t, "/mcp/y")
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, status)
	assert.Equal(t, []string{"authorization_code", "refresh_token"}, w.as.GrantTypes())
	for _, tr := range w.as.TokenRequests() {
		assert.True(t, tr.ClientSecretOK, "the registered client authenticates: %s", tr.AuthMethod)
		assert.Equal(t, []string{w.rs.resource}, tr.Form["resource"])
	}
	assert.Len(t, w.as.AuthorizationRequests(), 1, "the refresh needed no person")
}

// The fallback is for a resource with no metadata, never for one whose
// metadata is refused or cannot be had: each of these ends with no
// authorization request, although the origin serves the default
// endpoints.
func TestLegacyNeverForRefusedMetadata(t *testing.T) {
	for _, tc := range []struct {
		name string
		prm  http.HandlerFunc // at the path-inserted well-known URL
		// named: the challenges carry resource_metadata.
		named bool
		want  error
	}{
		{"another resource", func(rw http.ResponseWriter, r *http.Request) {
			writeJSON(rw, http.StatusOK, map[string]any{"resource": "https://evil.example.com/mcp", "authorization_servers": []string{"https://evil.example.com"}})
		}, false, discovery.ErrMismatch},
		{"malformed", func(rw http.ResponseWriter, r *http.Request) {
			writeJSON(rw, http.StatusOK, map[string]any{"resource": 42})
		}, false, discovery.ErrMalformed},
		{"server error", func(rw http.ResponseWriter, r *http.Request) {
			http.Error(rw, "down", http.StatusBadGateway)
		}, false, nil},
		{"named by the challenge but absent", http.NotFound, true, discovery.ErrNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newLegacyWorld(t, "", false)
			w.disc.RetryMax = 1
			w.rs.noMetadata = !tc.named
			mux := w.rs.srv.Config.Handler.(*http.ServeMux)
			mux.HandleFunc("/.well-known/oauth-protected-resource/mcp", tc.prm)

			_, _, err := w.get(t, "/mcp/x")
			require.Error(t, err)
			if tc.want != nil {
				assert.ErrorIs(t, err, tc.want)
			}
			assert.Empty(t, w.as.AuthorizationRequests(), "no authorization request")
			assert.Zero(t, w.as.Stats().Registrations, "no registration")
		})
	}
}

// The origin's document may name an issuer that is not the origin, but
// neither it nor an endpoint may leave the origin: a code, a verifier or a
// client secret would go where no metadata vouches for.
func TestLegacyOffOriginRefused(t *testing.T) {
	w := newLegacyWorld(t, "/oauth", true)
	w.as.Base = w.as.HTTP.URL // the endpoints on the authorization server's own origin

	_, _, err := w.get(t, "/mcp/x")
	assert.ErrorIs(t, err, discovery.ErrMismatch)
	assert.Empty(t, w.as.AuthorizationRequests())
	assert.Zero(t, w.as.Stats().Registrations)
}

// A legacy document without S256 is refused as any other is.
func TestLegacyNeedsPKCE(t *testing.T) {
	w := newLegacyWorld(t, "/oauth", true)
	w.as.NoPKCE = true

	_, _, err := w.get(t, "/mcp/x")
	assert.ErrorIs(t, err, authcode.ErrNoPKCE)
	assert.Empty(t, w.as.AuthorizationRequests())
}

// Escalator.AuthorizationServer holds in the fallback too.
func TestLegacyKeepsAuthorizationServerChoice(t *testing.T) {
	w := newLegacyWorld(t, "/oauth", true)
	w.esc.AuthorizationServer = "https://as.example"

	_, _, err := w.get(t, "/mcp/x")
	assert.ErrorContains(t, err, "is not https://as.example")
	assert.Empty(t, w.as.AuthorizationRequests())
	assert.Zero(t, w.as.Stats().Registrations)
}
