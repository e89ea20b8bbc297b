package stepup_test

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"golang.org/x/oauth2"

	"github.com/stepup-go/stepup"
	"github.com/stepup-go/stepup/dpop"
	"github.com/stepup-go/stepup/filestore"
	"github.com/stepup-go/stepup/internal/dpoptest"
)

// dpopServers are a token endpoint and a resource that take DPoP-bound
// tokens only, each demanding its own nonce (RFC 9449 §8, §9) and refusing
// a proof whose jti was seen, whose ath is another token's or whose htu is
// another URL, and a token whose proof is not signed by the key it is
// bound to.
type dpopServers struct {
	as, rs     *httptest.Server
	asV, rsV   dpoptest.Verifier
	tokenType  string // of issued tokens; "DPoP" unless set
	mu         sync.Mutex
	bound      map[string]string // access token -> jkt
	refresh    string            // the one refresh token that redeems
	refreshJKT string            // the key it is bound to (RFC 9449 §5)
	issued     int
	tokenCalls atomic.Int32
	rsCalls    atomic.Int32
	rsAuth     []string // Authorization schemes the resource saw
}

func newDPoPServers(t *testing.T) *dpopServers {
	d := &dpopServers{bound: map[string]string{}, tokenType: "DPoP"}
	d.asV.SetNonce("as-nonce-1")
	d.rsV.SetNonce("rs-nonce-1")
	d.as = httptest.NewServer(http.HandlerFunc(d.token))
	t.Cleanup(d.as.Close)
	mux := http.NewServeMux()
	mux.HandleFunc("/mcp", func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "ok") })
	var rs http.Handler
	d.rs = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d.rsCalls.Add(1)
		d.mu.Lock()
		scheme, _, _ := strings.Cut(r.Header.Get("Authorization"), " ")
		d.rsAuth = append(d.rsAuth, scheme)
		d.mu.Unlock()
		rs.ServeHTTP(w, r)
	}))
	base, _ := url.Parse(d.rs.URL)
	rs = d.rsV.Resource(base, d.boundTo, mux)
	t.Cleanup(d.rs.Close)
	return d
}

func (d *dpopServers) boundTo(tok string) string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.bound[tok]
}

// grant issues a token pair bound to jkt.
func (d *dpopServers) grant(jkt string) *oauth2.Token {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.issued++
	at, rt := fmt.Sprintf("at-%d-secret", d.issued), fmt.Sprintf("rt-%d-secret", d.issued)
	if d.tokenType == "DPoP" {
		d.bound[at] = jkt
	}
	d.refresh, d.refreshJKT = rt, jkt
	return &oauth2.Token{AccessToken: at, RefreshToken: rt, TokenType: d.tokenType}
}

func (d *dpopServers) token(w http.ResponseWriter, r *http.Request) {
	d.tokenCalls.Add(1)
	w.Header().Set("Content-Type", "application/json")
	u, _ := url.Parse(d.as.URL + r.URL.Path)
	p, err := d.asV.Check(r, u, "")
	if errors.Is(err, dpoptest.ErrWrongNonce) {
		w.Header().Set("DPoP-Nonce", d.asV.Nonce())
		w.WriteHeader(http.StatusBadRequest)
		_, _ = io.WriteString(w, `{"error":"use_dpop_nonce"}`)
		return
	}
	if err != nil {
		w.WriteHeader(http.StatusBadRequest)
		_, _ = io.WriteString(w, `{"error":"invalid_dpop_proof"}`)
		return
	}
	d.mu.Lock()
	ok := r.PostFormValue("grant_type") == "refresh_token" && r.PostFormValue("refresh_token") == d.refresh && p.JKT == d.refreshJKT
	d.mu.Unlock()
	if !ok {
		w.WriteHeader(http.StatusBadRequest)
		_, _ = io.WriteString(w, `{"error":"invalid_grant"}`)
		return
	}
	tok := d.grant(p.JKT)
	_ = json.NewEncoder(w).Encode(map[string]any{"access_token": tok.AccessToken, "refresh_token": tok.RefreshToken, "token_type": tok.TokenType, "expires_in": 3600})
}

// expired makes the resource refuse tok, as once it has expired.
func (d *dpopServers) expired(tok string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.bound, tok)
}

func (d *dpopServers) client(t *testing.T, key *dpop.Key, first *oauth2.Token, logs io.Writer, opts ...stepup.TokenSourceOption) *http.Client {
	cfg := &oauth2.Config{ClientID: "c", Endpoint: oauth2.Endpoint{TokenURL: d.as.URL + "/token", AuthStyle: oauth2.AuthStyleInParams}}
	opts = append([]stepup.TokenSourceOption{stepup.WithOAuth2Config(cfg), stepup.WithDPoP(key)}, opts...)
	ts, err := stepup.NewTokenSource(d.rs.URL+"/mcp", first, opts...)
	require.NoError(t, err)
	tr := &stepup.Transport{Source: ts, Base: d.rs.Client().Transport}
	if logs != nil {
		tr.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return &http.Client{Transport: tr}
}

// get posts to u; the token requests of a refresh go through the
// authorization server's client, which its Close cleans up.
func (d *dpopServers) get(t *testing.T, c *http.Client, u string) (*http.Response, error) {
	t.Helper()
	ctx := context.WithValue(context.Background(), oauth2.HTTPClient, d.as.Client())
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, strings.NewReader(`{"jsonrpc":"2.0"}`))
	require.NoError(t, err)
	resp, err := c.Do(req)
	if err == nil {
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		resp.Body = io.NopCloser(bytes.NewReader(body))
	}
	return resp, err
}

func TestDPoPBoundTokensEndToEnd(t *testing.T) {
	opt := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, opt) }) // after the servers' Close
	d := newDPoPServers(t)
	key, err := dpop.GenerateKey()
	require.NoError(t, err)
	first := d.grant(key.Thumbprint())
	d.expired(first.AccessToken)
	var logs bytes.Buffer
	c := d.client(t, key, first, &logs)

	// The resource demands its nonce, then refuses the expired token; the
	// refresh meets the token endpoint's nonce demand; the replay goes
	// with the new bound token and the resource's nonce.
	resp, err := d.get(t, c, d.rs.URL+"/mcp?q=1")
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.EqualValues(t, 2, d.tokenCalls.Load(), "one refresh: its proof without the nonce, then with it")
	assert.EqualValues(t, 3, d.rsCalls.Load(), "nonce demand, expired token, success")

	for range 3 { // each request a fresh proof: the resource refuses a jti seen before
		resp, err = d.get(t, c, d.rs.URL+"/mcp")
		require.NoError(t, err)
		assert.Equal(t, http.StatusOK, resp.StatusCode)
	}
	assert.EqualValues(t, 6, d.rsCalls.Load(), "the kept nonce goes with each later request")
	d.mu.Lock()
	for _, s := range d.rsAuth {
		assert.Equal(t, "DPoP", s)
	}
	d.mu.Unlock()

	// The refresh token rotated and the second refresh works too, with
	// the authorization server's kept nonce at the first try.
	d.expired("at-2-secret")
	resp, err = d.get(t, c, d.rs.URL+"/mcp")
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.EqualValues(t, 3, d.tokenCalls.Load())

	for _, secret := range []string{"at-", "rt-", "eyJ", `"d"`} {
		assert.NotContains(t, logs.String(), secret, "no token, proof or key in a log line")
	}
}

func TestDPoPStolenTokenRefused(t *testing.T) {
	d := newDPoPServers(t)
	d.rsV.SetNonce("")
	key, err := dpop.GenerateKey()
	require.NoError(t, err)
	tok := d.grant(key.Thumbprint())
	resp, err := d.get(t, d.client(t, key, tok, nil), d.rs.URL+"/mcp")
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode)

	thief, err := dpop.GenerateKey()
	require.NoError(t, err)
	_, err = d.get(t, d.client(t, thief, tok, nil), d.rs.URL+"/mcp")
	assert.ErrorIs(t, err, stepup.ErrInvalidGrant, "the token without its key is refused, and so is its refresh token")
	assert.NotContains(t, err.Error(), tok.AccessToken)
	assert.NotContains(t, err.Error(), tok.RefreshToken)

	req, _ := http.NewRequest(http.MethodGet, d.rs.URL+"/mcp", nil)
	req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	plain, err := d.rs.Client().Do(req)
	require.NoError(t, err)
	plain.Body.Close()
	assert.Equal(t, http.StatusUnauthorized, plain.StatusCode, "the token as a bearer token")
}

func TestDPoPNonceStormStops(t *testing.T) {
	d := newDPoPServers(t)
	var n atomic.Int32
	rotating := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d.rsCalls.Add(1)
		w.Header().Set("DPoP-Nonce", fmt.Sprintf("storm-%d", n.Add(1)))
		w.Header().Set("WWW-Authenticate", `DPoP error="use_dpop_nonce"`)
		w.WriteHeader(http.StatusUnauthorized)
	})
	d.rs.Config.Handler = rotating
	key, err := dpop.GenerateKey()
	require.NoError(t, err)
	tok := d.grant(key.Thumbprint())
	_, err = d.get(t, d.client(t, key, tok, nil), d.rs.URL+"/mcp")
	var ce *stepup.ChallengeError
	require.ErrorAs(t, err, &ce)
	assert.ErrorIs(t, err, stepup.ErrExhausted)
	assert.Equal(t, stepup.ReasonDPoPNonce, ce.Reason)
	assert.EqualValues(t, 2, d.rsCalls.Load(), "one replay with the nonce, then the guard")
	assert.NotContains(t, err.Error(), tok.AccessToken)
}

func TestDPoPBearerIssuedStaysBearer(t *testing.T) {
	d := newDPoPServers(t)
	d.tokenType = "Bearer"
	var sawProof atomic.Bool
	d.rs.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sawProof.Store(r.Header.Get("DPoP") != "")
		if r.Header.Get("Authorization") != "Bearer at-1-secret" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		_, _ = io.WriteString(w, "ok")
	})
	key, err := dpop.GenerateKey()
	require.NoError(t, err)
	resp, err := d.get(t, d.client(t, key, d.grant(""), nil), d.rs.URL+"/mcp")
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, resp.StatusCode, "a server that issues Bearer gets Bearer (RFC 9449 §7.1)")
	assert.False(t, sawProof.Load())
}

// The key is saved with the grant it binds, sealed with it: a source
// started afresh with the saved grant (a restart) takes the saved key, so
// that its refresh token, bound to that key, still redeems.
func TestDPoPKeySavedWithTheGrant(t *testing.T) {
	d := newDPoPServers(t)
	d.rsV.SetNonce("")
	block, err := aes.NewCipher(bytes.Repeat([]byte{'k'}, 32))
	require.NoError(t, err)
	aead, err := cipher.NewGCM(block)
	require.NoError(t, err)
	dir := filepath.Join(t.TempDir(), "tokens") // created 0700
	st, err := filestore.New(filestore.WithDir(dir), filestore.WithAEAD(aead))
	require.NoError(t, err)

	key, err := dpop.GenerateKey()
	require.NoError(t, err)
	first := d.grant(key.Thumbprint())
	d.expired(first.AccessToken)
	resp, err := d.get(t, d.client(t, key, first, nil, stepup.WithStore(st)), d.rs.URL+"/mcp")
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode, "refreshed, and saved")

	files, err := filepath.Glob(filepath.Join(dir, "*.json"))
	require.NoError(t, err)
	require.Len(t, files, 1)
	raw, err := os.ReadFile(files[0])
	require.NoError(t, err)
	jwk, err := key.MarshalPrivateJWK()
	require.NoError(t, err)
	var priv struct{ D string }
	require.NoError(t, json.Unmarshal(jwk, &priv))
	assert.NotContains(t, string(raw), priv.D, "the key is sealed like the tokens")

	// The restart: a new process with a new key of its own.
	d.expired("at-2-secret")
	other, err := dpop.GenerateKey()
	require.NoError(t, err)
	st2, err := filestore.New(filestore.WithDir(dir), filestore.WithAEAD(aead))
	require.NoError(t, err)
	resp, err = d.get(t, d.client(t, other, nil, nil, stepup.WithStore(st2)), d.rs.URL+"/mcp")
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, resp.StatusCode, "the saved refresh token redeems with the saved key")
	assert.EqualValues(t, 4, d.tokenCalls.Load(), "one refresh per source, each after its nonce demand: nonces are not saved")
}

// A redirect hop to another origin carries neither the token nor a proof.
func TestDPoPNotToAnotherOrigin(t *testing.T) {
	d := newDPoPServers(t)
	d.rsV.SetNonce("")
	var gotAuth, gotProof atomic.Value
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotAuth.Store(r.Header.Get("Authorization"))
		gotProof.Store(r.Header.Get("DPoP"))
		_, _ = io.WriteString(w, "elsewhere")
	}))
	t.Cleanup(other.Close)
	d.rs.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, other.URL+"/landing", http.StatusTemporaryRedirect)
	})
	key, err := dpop.GenerateKey()
	require.NoError(t, err)
	resp, err := d.get(t, d.client(t, key, d.grant(key.Thumbprint()), nil), d.rs.URL+"/mcp")
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "", gotAuth.Load())
	assert.Equal(t, "", gotProof.Load())
}
