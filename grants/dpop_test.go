package grants_test

import (
	"errors"
	"fmt"
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

// dpopAS is an authorization server that issues DPoP-bound tokens (RFC
// 9449 §5) with the client credentials grant to client svc, secret s, for
// requests with a proof carrying its nonce (§8), and keeps what each token
// is bound to.
type dpopAS struct {
	srv   *httptest.Server
	v     dpoptest.Verifier
	mu    sync.Mutex
	bound map[string]string // access token -> jkt
	calls int
}

func newDPoPAS(t *testing.T) *dpopAS {
	d := &dpopAS{bound: map[string]string{}}
	d.v.SetNonce("as-nonce")
	mux := http.NewServeMux()
	d.srv = httptest.NewServer(mux)
	t.Cleanup(d.srv.Close)
	mux.HandleFunc("GET /.well-known/oauth-authorization-server", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{
			"issuer": d.srv.URL, "token_endpoint": d.srv.URL + "/token", "response_types_supported": []string{"code"},
			"grant_types_supported": []string{"client_credentials"}, "dpop_signing_alg_values_supported": []string{"ES256"},
		})
	})
	mux.HandleFunc("POST /token", d.token)
	return d
}

func (d *dpopAS) token(w http.ResponseWriter, r *http.Request) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.calls++
	u, _ := url.Parse(d.srv.URL + r.URL.Path)
	p, err := d.v.Check(r, u, "")
	switch {
	case errors.Is(err, dpoptest.ErrWrongNonce):
		w.Header().Set("DPoP-Nonce", d.v.Nonce())
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": dpop.ErrorUseNonce})
		return
	case err != nil:
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_dpop_proof"})
		return
	}
	if id, secret, ok := r.BasicAuth(); !ok || id != "svc" || secret != "s" || r.PostFormValue("grant_type") != "client_credentials" {
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "invalid_client"})
		return
	}
	tok := fmt.Sprintf("at-%d", d.calls)
	d.bound[tok] = p.JKT
	writeJSON(w, http.StatusOK, map[string]any{"access_token": tok, "token_type": "DPoP", "expires_in": 3600})
}

func (d *dpopAS) boundTo(tok string) string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.bound[tok]
}

func TestClientCredentialsDPoP(t *testing.T) {
	d := newDPoPAS(t)
	var rsV dpoptest.Verifier
	rsV.SetNonce("rs-nonce")
	mux := http.NewServeMux()
	rs := httptest.NewUnstartedServer(mux)
	rs.Start()
	t.Cleanup(rs.Close)
	resource := rs.URL + "/mcp"
	mux.HandleFunc("/.well-known/oauth-protected-resource/mcp", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"resource": resource, "authorization_servers": []string{d.srv.URL}})
	})
	base, _ := url.Parse(rs.URL)
	mux.Handle("/mcp", rsV.Resource(base, d.boundTo, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "ok")
	})))

	key, err := dpop.GenerateKey()
	require.NoError(t, err)
	ts, err := stepup.NewTokenSource(resource, nil, stepup.WithDPoP(key), stepup.WithEscalator(&grants.ClientCredentials{
		Auth: grants.ClientSecret{ClientID: "svc", Secret: "s"}, Discovery: disc()}))
	require.NoError(t, err)
	hc := &http.Client{Transport: &stepup.Transport{Source: ts}}
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
