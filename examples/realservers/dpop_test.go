package realservers_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"

	"github.com/stepup-go/stepup"
	"github.com/stepup-go/stepup/authcode"
	"github.com/stepup-go/stepup/discovery"
	"github.com/stepup-go/stepup/dpop"
	"github.com/stepup-go/stepup/examples/internal/realserver"
	"github.com/stepup-go/stepup/internal/dpoptest"
)

// dpopResource is a protected resource that takes DPoP-bound tokens of
// oidc-provider only (RFC 9449 §7): the JWT access token verified, a
// proof of each request verified (its own nonce required, a jti seen
// before, another URL or another token's hash refused), signed by the key
// the token's cnf.jkt names. GET /mcp?tool=read needs mcp:read,
// tool=write mcp:read and mcp:write (a 403 insufficient_scope otherwise).
type dpopResource struct {
	srv *httptest.Server
	as  *realserver.Server
	v   dpoptest.Verifier

	mu     sync.Mutex
	refuse string   // an access token to answer 401 invalid_token, as once revoked
	proofs []string // the DPoP field of each request
}

func newDPoPResource(t *testing.T, as func(resource string) *realserver.Server) *dpopResource {
	r := &dpopResource{}
	r.v.SetNonce("rs-nonce-1")
	r.srv = httptest.NewUnstartedServer(http.HandlerFunc(r.serve))
	r.srv.Start()
	t.Cleanup(r.srv.Close)
	r.as = as(r.srv.URL + "/mcp")
	return r
}

func (r *dpopResource) metadataURL() string {
	return r.srv.URL + "/.well-known/oauth-protected-resource/mcp"
}

func (r *dpopResource) challenge(w http.ResponseWriter, status int, code, scope string) {
	v := `DPoP algs="ES256", resource_metadata="` + r.metadataURL() + `"`
	if code != "" {
		v += `, error="` + code + `"`
	}
	if scope != "" {
		v += `, scope="` + scope + `"`
	}
	w.Header().Set("WWW-Authenticate", v)
	w.WriteHeader(status)
}

func (r *dpopResource) serve(w http.ResponseWriter, req *http.Request) {
	if req.URL.Path == "/.well-known/oauth-protected-resource/mcp" {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{
			"resource": r.srv.URL + "/mcp", "authorization_servers": []string{r.as.Issuer},
			"scopes_supported": []string{realserver.ScopeRead, realserver.ScopeWrite}, "dpop_bound_access_tokens_required": true,
		})
		return
	}
	r.mu.Lock()
	r.proofs = append(r.proofs, req.Header.Get("DPoP"))
	refuse := r.refuse
	r.mu.Unlock()
	scheme, tok, _ := strings.Cut(req.Header.Get("Authorization"), " ")
	if !strings.EqualFold(scheme, dpop.Scheme) || tok == "" {
		// The scope of the base tools, as the seed scenario's server
		// names it.
		r.challenge(w, http.StatusUnauthorized, "", realserver.ScopeRead)
		return
	}
	u := &url.URL{Scheme: "http", Host: r.srv.Listener.Addr().String(), Path: req.URL.Path}
	p, err := r.v.Check(req, u, tok)
	switch {
	case errors.Is(err, dpoptest.ErrWrongNonce):
		w.Header().Set("DPoP-Nonce", r.v.Nonce())
		r.challenge(w, http.StatusUnauthorized, dpop.ErrorUseNonce, "")
		return
	case err != nil:
		r.challenge(w, http.StatusUnauthorized, "invalid_dpop_proof", "")
		return
	}
	info, err := r.as.Verify(req.Context(), tok)
	if err != nil || info.JKT == "" || info.JKT != p.JKT || tok == refuse {
		r.challenge(w, http.StatusUnauthorized, "invalid_token", "")
		return
	}
	need := []string{realserver.ScopeRead}
	if req.URL.Query().Get("tool") == "write" {
		need = append(need, realserver.ScopeWrite)
	}
	for _, s := range need {
		if !contains(info.Scopes, s) {
			r.challenge(w, http.StatusForbidden, "insufficient_scope", strings.Join(need, " "))
			return
		}
	}
	_, _ = io.WriteString(w, "ok "+req.URL.Query().Get("tool"))
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// TestDPoPOIDCProvider is the seed scenario with tokens bound to a DPoP
// key, against oidc-provider requiring DPoP and its nonces: a login, a
// 403 step-up for the union of the scopes, a refresh with a rotated
// refresh token; then the resource refuses what a thief holds.
func TestDPoPOIDCProvider(t *testing.T) {
	r := newDPoPResource(t, func(resource string) *realserver.Server {
		return realserver.StartOIDCProvider(t, realserver.OIDCProviderOptions{Resource: resource, DPoP: true})
	})
	key, err := dpop.GenerateKey()
	require.NoError(t, err)
	disc := &discovery.Client{}
	t.Cleanup(disc.CloseIdleConnections)
	var asked []string
	esc := &authcode.Escalator{Discovery: disc, Receiver: &authcode.Loopback{Open: func(ctx context.Context, authURL string) error {
		asked = append(asked, authURL)
		return r.as.Browser(ctx, authURL)
	}}}
	ts, err := stepup.NewTokenSource(r.srv.URL+"/mcp", nil, stepup.WithDPoP(key), stepup.WithEscalator(esc))
	require.NoError(t, err)
	base := &http.Transport{}
	t.Cleanup(base.CloseIdleConnections)
	var logs bytes.Buffer
	tr := &stepup.Transport{Base: base, Source: ts,
		Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	hc := &http.Client{Transport: tr}
	call := func(tool string) string {
		t.Helper()
		resp, err := hc.Get(r.srv.URL + "/mcp?tool=" + tool)
		require.NoError(t, err)
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		require.Equal(t, http.StatusOK, resp.StatusCode, "%s: %s", tool, body)
		return string(body)
	}

	// The login.
	assert.Equal(t, "ok read", call("read"))
	tok, err := ts.Token()
	require.NoError(t, err)
	assert.True(t, strings.EqualFold(tok.TokenType, "DPoP"), "a DPoP-bound token")
	require.NotEmpty(t, tok.RefreshToken)
	info, err := r.as.Verify(context.Background(), tok.AccessToken)
	require.NoError(t, err)
	assert.Equal(t, key.Thumbprint(), info.JKT, "bound to the key (RFC 9449 §6.1)")
	require.Len(t, asked, 1)
	au, err := url.Parse(asked[0])
	require.NoError(t, err)
	assert.NotContains(t, au.RawQuery, "dpop_jkt", "pushed (RFC 9126): the browser carries only request_uri")

	// The step-up: one consent for the union, no refresh.
	before := r.as.Counts()
	assert.Equal(t, "ok write", call("write"))
	after := r.as.Counts()
	assert.Equal(t, before.Authorizations+1, after.Authorizations)
	assert.Equal(t, before.Grants["refresh_token"], after.Grants["refresh_token"], "no refresh on a 403")
	_, granted := ts.Scopes()
	assert.Contains(t, granted, realserver.ScopeWrite)
	assert.Contains(t, granted, realserver.ScopeRead)

	// The refresh: the resource refuses the token, the refresh token
	// rotates, the new token is bound to the same key.
	stepped, err := ts.Token()
	require.NoError(t, err)
	r.mu.Lock()
	r.refuse = stepped.AccessToken
	r.mu.Unlock()
	assert.Equal(t, "ok write", call("write"))
	refreshed, err := ts.Token()
	require.NoError(t, err)
	assert.NotEqual(t, stepped.RefreshToken, refreshed.RefreshToken, "rotated")
	assert.Equal(t, after.Grants["refresh_token"]+1, r.as.Counts().Grants["refresh_token"], "one refresh")
	info, err = r.as.Verify(context.Background(), refreshed.AccessToken)
	require.NoError(t, err)
	assert.Equal(t, key.Thumbprint(), info.JKT)

	// The resource's own checks, with what a thief could capture.
	r.mu.Lock()
	last := r.proofs[len(r.proofs)-1]
	r.mu.Unlock()
	resourceURL := r.srv.URL + "/mcp"
	send := func(auth, proof string) int {
		t.Helper()
		req, err := http.NewRequest(http.MethodGet, resourceURL, nil)
		require.NoError(t, err)
		req.Header.Set("Authorization", auth)
		if proof != "" {
			req.Header.Set("DPoP", proof)
		}
		resp, err := base.RoundTrip(req)
		require.NoError(t, err)
		resp.Body.Close()
		return resp.StatusCode
	}
	nonce := r.v.Nonce()
	htu := dpop.HTU(mustParse(t, resourceURL))
	assert.Equal(t, http.StatusUnauthorized, send("DPoP "+refreshed.AccessToken, last), "a proof used before (jti)")
	other, err := key.Proof(http.MethodGet, htu, "another-token", nonce)
	require.NoError(t, err)
	assert.Equal(t, http.StatusUnauthorized, send("DPoP "+refreshed.AccessToken, other), "a proof of another token (ath)")
	elsewhere, err := key.Proof(http.MethodGet, r.srv.URL+"/other", refreshed.AccessToken, nonce)
	require.NoError(t, err)
	assert.Equal(t, http.StatusUnauthorized, send("DPoP "+refreshed.AccessToken, elsewhere), "a proof for another URL (htu)")
	thief, err := dpop.GenerateKey()
	require.NoError(t, err)
	stolen, err := thief.Proof(http.MethodGet, htu, refreshed.AccessToken, nonce)
	require.NoError(t, err)
	assert.Equal(t, http.StatusUnauthorized, send("DPoP "+refreshed.AccessToken, stolen), "the token without its key")
	assert.Equal(t, http.StatusUnauthorized, send("Bearer "+refreshed.AccessToken, ""), "the token as a bearer token")
	good, err := key.Proof(http.MethodGet, htu, refreshed.AccessToken, nonce)
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, send("DPoP "+refreshed.AccessToken, good), "and the real thing passes")

	// The stolen refresh token is no use without the key either: the
	// provider binds it to the key of a public client (RFC 9449 §5).
	cfg := &oauth2.Config{ClientID: mustParse(t, asked[0]).Query().Get("client_id"), Endpoint: oauth2.Endpoint{TokenURL: r.as.Issuer + "/token", AuthStyle: oauth2.AuthStyleInParams}}
	thiefCtx := context.WithValue(context.Background(), oauth2.HTTPClient, dpop.NewConfig(thief).Client(&http.Client{Transport: base}))
	_, err = cfg.TokenSource(thiefCtx, &oauth2.Token{RefreshToken: refreshed.RefreshToken}).Token()
	require.Error(t, err, "the refresh token with another key")

	// The provider does demand its nonce (RFC 9449 §8): a proof without
	// one is refused with it.
	bare, err := thief.Proof(http.MethodPost, r.as.Issuer+"/token", "", "")
	require.NoError(t, err)
	req, err := http.NewRequest(http.MethodPost, r.as.Issuer+"/token", strings.NewReader(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"x"}, "client_id": {cfg.ClientID}}.Encode()))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("DPoP", bare)
	resp, err := base.RoundTrip(req)
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Equal(t, http.StatusBadRequest, resp.StatusCode)
	assert.Contains(t, string(body), dpop.ErrorUseNonce)
	assert.NotEmpty(t, resp.Header.Get("DPoP-Nonce"))

	r.mu.Lock()
	proofs := append([]string(nil), r.proofs...)
	r.mu.Unlock()
	for _, secret := range append(proofs, tok.AccessToken, tok.RefreshToken, stepped.AccessToken, refreshed.AccessToken, refreshed.RefreshToken) {
		if secret != "" {
			assert.NotContains(t, logs.String(), secret, "no token or proof in a log line")
		}
	}
	jwk, err := key.MarshalPrivateJWK()
	require.NoError(t, err)
	var priv struct{ D string }
	require.NoError(t, json.Unmarshal(jwk, &priv))
	assert.NotContains(t, logs.String(), priv.D, "no key in a log line")
}

func mustParse(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	require.NoError(t, err)
	return u
}
