package grants_test

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stepup-go/stepup"
	"github.com/stepup-go/stepup/dpop"
	"github.com/stepup-go/stepup/grants"
	"github.com/stepup-go/stepup/internal/dpoptest"
)

// dpopAS makes as issue DPoP-bound tokens (RFC 9449 §5) to requests with
// a proof carrying its nonce (§8), and keeps what each is bound to.
type dpopAS struct {
	v     dpoptest.Verifier
	mu    sync.Mutex
	bound map[string]string // access token -> jkt
	calls int
}

func bindTokens(as *authServer) *dpopAS {
	d := &dpopAS{bound: map[string]string{}}
	d.v.SetNonce("as-nonce")
	as.override = func(w http.ResponseWriter, r *http.Request) bool {
		d.mu.Lock()
		defer d.mu.Unlock()
		d.calls++
		u, _ := url.Parse(as.issuer + r.URL.Path)
		p, err := d.v.Check(r, u, "")
		switch {
		case errors.Is(err, dpoptest.ErrWrongNonce):
			w.Header().Set("DPoP-Nonce", d.v.Nonce())
			oauthError(w, http.StatusBadRequest, "use_dpop_nonce", "a nonce is required")
			return true
		case err != nil:
			oauthError(w, http.StatusBadRequest, "invalid_dpop_proof", err.Error())
			return true
		}
		tok := randomString()
		d.bound[tok] = p.JKT
		writeJSON(w, http.StatusOK, map[string]any{"access_token": tok, "token_type": "DPoP", "expires_in": 3600})
		return true
	}
	return d
}

func (d *dpopAS) boundTo(tok string) string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.bound[tok]
}

func TestClientCredentialsDPoP(t *testing.T) {
	as := newAuthServer(t)
	d := bindTokens(as)
	var rsV dpoptest.Verifier
	rsV.SetNonce("rs-nonce")
	mux := http.NewServeMux()
	rs := httptest.NewUnstartedServer(mux)
	rs.Start()
	t.Cleanup(rs.Close)
	resource := rs.URL + "/mcp"
	mux.HandleFunc("/.well-known/oauth-protected-resource/mcp", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"resource": resource, "authorization_servers": []string{as.issuer}})
	})
	base, _ := url.Parse(rs.URL)
	mux.Handle("/mcp", rsV.Resource(base, d.boundTo, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "ok")
	})))
	as.register(&asClient{id: "svc", secret: "s", method: "client_secret_basic"})

	key, err := dpop.GenerateKey()
	require.NoError(t, err)
	ts, err := stepup.NewTokenSource(resource, nil, stepup.WithDPoP(key))
	require.NoError(t, err)
	hc := &http.Client{Transport: &stepup.Transport{Source: ts, Escalator: &grants.ClientCredentials{
		Auth: grants.ClientSecret{ClientID: "svc", Secret: "s"}, Discovery: disc()}}}
	t.Cleanup(hc.CloseIdleConnections)
	for range 2 {
		resp, err := hc.Get(resource)
		require.NoError(t, err)
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		assert.Equal(t, http.StatusOK, resp.StatusCode, string(body))
	}
	tok, err := ts.Token()
	require.NoError(t, err)
	assert.True(t, strings.EqualFold(tok.TokenType, "DPoP"))
	assert.Equal(t, key.Thumbprint(), d.boundTo(tok.AccessToken), "bound to the source's key")
	d.mu.Lock()
	assert.Equal(t, 2, d.calls, "one grant: its proof without the nonce, then with it")
	d.mu.Unlock()
}
