package realserver_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"golang.org/x/oauth2"

	"github.com/stepup-go/stepup"
	"github.com/stepup-go/stepup/authcode"
	"github.com/stepup-go/stepup/examples/internal/realserver"
)

// mfaACR is the authentication context class /mcp/admin requires.
const mfaACR = "urn:example:mfa"

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// resourceServer is a protected resource (RFC 9728) whose tokens srv
// issues, at the resource URL of ln: /mcp/read needs mcp:read, /mcp/write
// mcp:write, /mcp/admin mcp:read and a login of ACR mfaACR; a token
// srv.Verify refuses gets 401 invalid_token, a token without the scope 403
// insufficient_scope (RFC 6750 §3.1), one of another ACR 401
// insufficient_user_authentication (RFC 9470 §3).
func resourceServer(t *testing.T, ln net.Listener, srv func() *realserver.Server) *httptest.Server {
	rs := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		as := srv()
		base := "http://" + r.Host
		meta := fmt.Sprintf(`resource_metadata="%s/.well-known/oauth-protected-resource/mcp"`, base)
		if r.URL.Path == "/.well-known/oauth-protected-resource/mcp" {
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(map[string]any{
				"resource":              as.Resource,
				"authorization_servers": []string{as.Issuer},
				"scopes_supported":      []string{"mcp:read", "mcp:write"},
			})
			return
		}
		need, ok := map[string]string{"/mcp/read": "mcp:read", "/mcp/write": "mcp:write", "/mcp/admin": "mcp:read"}[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok {
			w.Header().Set("WWW-Authenticate", `Bearer scope="mcp:read", `+meta)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		info, err := as.Verify(r.Context(), token)
		if err != nil {
			w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token", `+meta)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		if !slices.Contains(info.Scopes, need) {
			w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer error="insufficient_scope", scope=%q, %s`, need, meta))
			w.WriteHeader(http.StatusForbidden)
			return
		}
		if r.URL.Path == "/mcp/admin" && info.ACR != mfaACR {
			w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer error="insufficient_user_authentication", acr_values=%q, %s`, mfaACR, meta))
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		fmt.Fprintf(w, "%s for %s", r.URL.Path, info.Subject)
	}))
	rs.Listener.Close()
	rs.Listener = ln
	rs.Start()
	t.Cleanup(rs.Close)
	return rs
}

// hydraWithResource starts Hydra and a resource server whose tokens it
// issues.
func hydraWithResource(t *testing.T, opts realserver.HydraOptions) (*realserver.Server, string) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	opts.Resource = "http://" + ln.Addr().String() + "/mcp"
	var srv *realserver.Server
	rs := resourceServer(t, ln, func() *realserver.Server { return srv })
	srv = realserver.StartHydra(t, opts)
	return srv, rs.URL
}

// client is what a program using stepup against the resource sets up: a
// source with no token yet, the authorization code Escalator with the
// loopback receiver, whose browser is the harness's.
func client(t *testing.T, srv *realserver.Server, resource string) (*http.Client, *stepup.TokenSource, *authcode.MemoryRegistrations) {
	regs := &authcode.MemoryRegistrations{}
	base := http.DefaultTransport.(*http.Transport).Clone()
	t.Cleanup(base.CloseIdleConnections)
	esc := &authcode.Escalator{
		Receiver:      &authcode.Loopback{Open: srv.Browser},
		Registrations: regs,
	}
	ts, err := stepup.NewTokenSource(resource, nil, stepup.WithEscalator(esc))
	require.NoError(t, err)
	return &http.Client{Transport: &stepup.Transport{Base: base, Source: ts}, Timeout: time.Minute}, ts, regs
}

func get(t *testing.T, c *http.Client, u string) (int, string) {
	t.Helper()
	resp, err := c.Get(u)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(b)
}

// TestHydraLoginStepUpRevoke runs the Escalator against Hydra as a new
// user would: a first login on a 401 that gets a refresh token, a step-up
// on a 403 insufficient_scope to the union of the scopes, and, after the
// token is revoked (RFC 7009), the refresh the next 401 calls for.
func TestHydraLoginStepUpRevoke(t *testing.T) {
	srv, rsURL := hydraWithResource(t, realserver.HydraOptions{})
	hc, ts, _ := client(t, srv, srv.Resource)
	ctx := t.Context()

	code, body := get(t, hc, rsURL+"/mcp/read")
	require.Equal(t, http.StatusOK, code, body)
	c := srv.Counts()
	assert.Equal(t, 1, c.Registrations, "one dynamic registration")
	assert.Equal(t, 1, c.Authorizations)
	assert.Equal(t, map[string]int{"authorization_code": 1}, c.Grants)
	tok, err := ts.Token()
	require.NoError(t, err)
	assert.NotEmpty(t, tok.RefreshToken, "offline_access brings a refresh token")
	info, err := srv.Verify(ctx, tok.AccessToken)
	require.NoError(t, err)
	// Hydra is an OpenID Provider: the Escalator asks for openid too,
	// which offline_access needs there (OpenID Connect Core 1.0 §11).
	assert.ElementsMatch(t, []string{"openid", "mcp:read", "offline_access"}, info.Scopes)

	// A 403 insufficient_scope is a step-up, never a refresh: the
	// person is asked for what the token had and what the resource wants.
	code, body = get(t, hc, rsURL+"/mcp/write")
	require.Equal(t, http.StatusOK, code, body)
	c = srv.Counts()
	// Each Loopback listens on a new port: Hydra accepts any port of the
	// loopback redirect URI registered (RFC 8252 §7.3).
	assert.Equal(t, 1, c.Registrations, "the registration is kept for the issuer")
	assert.Equal(t, 2, c.Authorizations)
	assert.Equal(t, map[string]int{"authorization_code": 2}, c.Grants)
	require.Len(t, c.Requested, 2)
	assert.ElementsMatch(t, []string{"openid", "mcp:read", "mcp:write", "offline_access"}, strings.Fields(c.Requested[1]),
		"the step-up asks for what was granted and what the resource wants")
	tok, err = ts.Token()
	require.NoError(t, err)
	info, err = srv.Verify(ctx, tok.AccessToken)
	require.NoError(t, err)
	assert.ElementsMatch(t, []string{"openid", "mcp:read", "mcp:write", "offline_access"}, info.Scopes)

	// Revocation: Hydra revokes the whole grant (the refresh token with
	// the access token), so the refresh the 401 calls for is refused
	// (invalid_grant), and the Transport asks for a new authorization.
	require.NoError(t, srv.Revoke(ctx, tok.AccessToken))
	_, err = srv.Verify(ctx, tok.AccessToken)
	require.Error(t, err, "a revoked token is inactive")
	code, body = get(t, hc, rsURL+"/mcp/write")
	require.Equal(t, http.StatusOK, code, body)
	c = srv.Counts()
	assert.Equal(t, map[string]int{"authorization_code": 3, "refresh_token": 1}, c.Grants)
	assert.Equal(t, 3, c.Authorizations)
	assert.Equal(t, 1, c.Registrations)
}

// TestHydraRefreshRotation: with access tokens shorter-lived than the
// margin x/oauth2 keeps before expiry, every request refreshes first;
// Hydra rotates the refresh token, and a refresh token used twice revokes
// the grant (RFC 9700 §4.14.2), after which the Transport logs in again.
func TestHydraRefreshRotation(t *testing.T) {
	srv, rsURL := hydraWithResource(t, realserver.HydraOptions{AccessTokenTTL: 5 * time.Second})
	hc, ts, regs := client(t, srv, srv.Resource)
	ctx := t.Context()

	code, body := get(t, hc, rsURL+"/mcp/read")
	require.Equal(t, http.StatusOK, code, body)
	first, err := ts.Token() // expired already in x/oauth2's eyes: a refresh
	require.NoError(t, err)
	require.NotEmpty(t, first.RefreshToken)
	assert.Equal(t, 1, srv.Counts().Grants["refresh_token"])
	code, body = get(t, hc, rsURL+"/mcp/read")
	require.Equal(t, http.StatusOK, code, body)
	second, err := ts.Token()
	require.NoError(t, err)
	assert.NotEqual(t, first.RefreshToken, second.RefreshToken, "Hydra rotates refresh tokens")
	assert.Equal(t, 1, srv.Counts().Authorizations)

	// Reuse of an old refresh token, as by a thief: refused, and the
	// grant revoked with it.
	reg, err := regs.LoadRegistration(ctx, srv.Issuer)
	require.NoError(t, err)
	require.NotNil(t, reg)
	cfg := &oauth2.Config{ClientID: reg.ClientID, Endpoint: oauth2.Endpoint{TokenURL: srv.Issuer + "/oauth2/token", AuthStyle: oauth2.AuthStyleInParams}}
	_, err = stepup.RefreshWithConfig(cfg)(ctx, first, srv.Resource)
	var re *oauth2.RetrieveError
	require.ErrorAs(t, err, &re)
	assert.Equal(t, "invalid_grant", re.ErrorCode)
	_, err = srv.Verify(ctx, second.AccessToken)
	assert.Error(t, err, "reuse revokes the access token issued since")

	before := srv.Counts()
	code, body = get(t, hc, rsURL+"/mcp/read")
	require.Equal(t, http.StatusOK, code, body)
	after := srv.Counts()
	assert.Equal(t, before.Authorizations+1, after.Authorizations, "the grant is gone: a new login")
}

// TestHydraDecisions: partial consent, a step-up of the authentication
// (RFC 9470) whose ACR reaches the access token, and a declined consent.
func TestHydraDecisions(t *testing.T) {
	srv, rsURL := hydraWithResource(t, realserver.HydraOptions{})
	hc, ts, _ := client(t, srv, srv.Resource)
	ctx := t.Context()

	srv.Decide(realserver.Decision{Grant: []string{"mcp:read"}})
	code, body := get(t, hc, rsURL+"/mcp/read")
	require.Equal(t, http.StatusOK, code, body)
	tok, err := ts.Token()
	require.NoError(t, err)
	info, err := srv.Verify(ctx, tok.AccessToken)
	require.NoError(t, err)
	assert.Equal(t, []string{"mcp:read"}, info.Scopes, "offline_access not granted")
	assert.Empty(t, tok.RefreshToken)
	assert.Empty(t, info.ACR)
	firstLogin := info.AuthTime
	assert.WithinDuration(t, time.Now(), firstLogin, time.Minute)

	// The person logs in again, now with a second factor.
	srv.Decide(realserver.Decision{ACR: mfaACR})
	code, body = get(t, hc, rsURL+"/mcp/admin")
	require.Equal(t, http.StatusOK, code, body)
	assert.Equal(t, 2, srv.Counts().Authorizations)
	tok, err = ts.Token()
	require.NoError(t, err)
	info, err = srv.Verify(ctx, tok.AccessToken)
	require.NoError(t, err)
	assert.Equal(t, mfaACR, info.ACR)
	assert.False(t, info.AuthTime.Before(firstLogin))

	srv.Decide(realserver.Decision{Decline: true})
	_, err = hc.Get(rsURL + "/mcp/write")
	assert.ErrorIs(t, err, stepup.ErrDeclined)
	assert.Equal(t, 3, srv.Counts().Authorizations)
}

// TestHydraAudience: a token is for the resource only when its
// authorization named it (RFC 8707 §2, through the audience Hydra's consent
// app grants). A client that leaves resource out gets tokens the resource
// server refuses: one login, one refresh, and the Transport gives up
// rather than loop. Nor does a refresh token pass for an access token.
func TestHydraAudience(t *testing.T) {
	srv, rsURL := hydraWithResource(t, realserver.HydraOptions{})
	base := http.DefaultTransport.(*http.Transport).Clone()
	t.Cleanup(base.CloseIdleConnections)
	esc := &authcode.Escalator{Receiver: &authcode.Loopback{Open: srv.Browser}, OmitResource: true}
	ts, err := stepup.NewTokenSource(srv.Resource, nil, stepup.WithEscalator(esc))
	require.NoError(t, err)
	hc := &http.Client{Transport: &stepup.Transport{Base: base, Source: ts}, Timeout: time.Minute}

	_, err = hc.Get(rsURL + "/mcp/read")
	require.ErrorIs(t, err, stepup.ErrExhausted)
	c := srv.Counts()
	assert.Equal(t, 1, c.Authorizations)
	assert.Equal(t, map[string]int{"authorization_code": 1, "refresh_token": 1}, c.Grants)

	tok, err := ts.Token()
	require.NoError(t, err)
	_, err = srv.Verify(t.Context(), tok.AccessToken)
	assert.ErrorContains(t, err, "audience")
	_, err = srv.Verify(t.Context(), tok.RefreshToken)
	assert.ErrorContains(t, err, "refresh_token")
}
