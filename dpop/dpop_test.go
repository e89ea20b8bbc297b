package dpop_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stepup-go/stepup/dpop"
	"github.com/stepup-go/stepup/internal/dpoptest"
)

func mustURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	require.NoError(t, err)
	return u
}

// proofRequest is a request carrying proof, as a server receives it.
func proofRequest(method, target, proof string) *http.Request {
	r := httptest.NewRequest(method, target, nil)
	r.Header.Set("DPoP", proof)
	return r
}

func TestProofVerifies(t *testing.T) {
	k, err := dpop.GenerateKey()
	require.NoError(t, err)
	assert.Equal(t, "ES256", k.Algorithm())
	u := mustURL(t, "https://rs.example/mcp?x=1#f")
	proof, err := k.Proof("POST", dpop.HTU(u), "tok", "n-1")
	require.NoError(t, err)

	v := new(dpoptest.Verifier)
	v.SetNonce("n-1")
	p, err := v.Check(proofRequest("POST", "https://rs.example/mcp?x=1", proof), u, "tok")
	require.NoError(t, err)
	assert.Equal(t, k.Thumbprint(), p.JKT, "the thumbprint is the embedded key's (RFC 7638)")

	_, err = v.Check(proofRequest("POST", "https://rs.example/mcp", proof), u, "tok")
	assert.ErrorIs(t, err, dpoptest.ErrReplayed, "the same proof twice")

	other, err := k.Proof("POST", dpop.HTU(u), "tok", "n-1")
	require.NoError(t, err)
	assert.NotEqual(t, proof, other, "fresh jti per proof")
	_, err = (&dpoptest.Verifier{}).Check(proofRequest("POST", "/", other), u, "stolen")
	assert.ErrorIs(t, err, dpoptest.ErrWrongATH)
	_, err = (&dpoptest.Verifier{}).Check(proofRequest("POST", "/", other), mustURL(t, "https://rs.example/other"), "tok")
	assert.ErrorIs(t, err, dpoptest.ErrWrongTarget)
	_, err = (&dpoptest.Verifier{}).Check(proofRequest("GET", "/", other), u, "tok")
	assert.ErrorIs(t, err, dpoptest.ErrWrongTarget)
	v2 := new(dpoptest.Verifier)
	v2.SetNonce("n-2")
	_, err = v2.Check(proofRequest("POST", "/", other), u, "tok")
	assert.ErrorIs(t, err, dpoptest.ErrWrongNonce)
}

func TestHTU(t *testing.T) {
	assert.Equal(t, "https://rs.example:8443/a%2Fb/c", dpop.HTU(mustURL(t, "https://user:pw@rs.example:8443/a%2Fb/c?q=1#frag")))
}

func TestKeyTypes(t *testing.T) {
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	require.NoError(t, err)
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	_, ed, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	cases := []struct {
		alg    string
		signer crypto.Signer
	}{{"ES384", p384}, {"PS256", rk}, {"EdDSA", ed}}
	u := mustURL(t, "https://as.example/token")
	for _, c := range cases {
		k, err := dpop.NewKey(c.signer)
		require.NoError(t, err, c.alg)
		assert.Equal(t, c.alg, k.Algorithm())
		proof, err := k.Proof("POST", dpop.HTU(u), "", "")
		require.NoError(t, err)
		p, err := (&dpoptest.Verifier{}).Check(proofRequest("POST", "/token", proof), u, "")
		require.NoError(t, err, c.alg)
		assert.Equal(t, k.Thumbprint(), p.JKT)

		b, err := k.MarshalPrivateJWK()
		require.NoError(t, err)
		back, err := dpop.ParsePrivateJWK(b)
		require.NoError(t, err)
		assert.Equal(t, k.Thumbprint(), back.Thumbprint(), "the saved key is the same key")
	}

	small, err := rsa.GenerateKey(rand.Reader, 1024)
	require.NoError(t, err)
	_, err = dpop.NewKey(small)
	assert.Error(t, err)
}

func TestParsePrivateJWKRefusesPublic(t *testing.T) {
	_, err := dpop.ParsePrivateJWK([]byte(`{"kty":"EC","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}`))
	assert.Error(t, err)
	_, err = dpop.ParsePrivateJWK([]byte(`not json`))
	assert.Error(t, err)
}

func TestKeyStringHidesPrivate(t *testing.T) {
	k, err := dpop.GenerateKey()
	require.NoError(t, err)
	b, err := k.MarshalPrivateJWK()
	require.NoError(t, err)
	assert.NotContains(t, fmt.Sprint(k), `"d"`)
	assert.NotContains(t, fmt.Sprintf("%+v", k), string(b))
}

// tokenServer is a token endpoint that demands a DPoP proof with its
// current nonce (RFC 9449 §8); with rotate, it refuses every request with
// a new nonce, as a broken server would.
type tokenServer struct {
	v      dpoptest.Verifier
	rotate bool
	hits   atomic.Int32
	srv    *httptest.Server
}

func newTokenServer(t *testing.T, rotate bool) *tokenServer {
	ts := &tokenServer{rotate: rotate}
	ts.v.SetNonce("nonce-0")
	ts.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := ts.hits.Add(1)
		body, _ := io.ReadAll(r.Body)
		if string(body) != "grant_type=refresh_token&refresh_token=r" {
			http.Error(w, "body lost", http.StatusTeapot)
			return
		}
		u := mustURL(t, ts.srv.URL+r.URL.Path)
		if _, err := ts.v.Check(r, u, ""); err != nil || ts.rotate {
			if ts.rotate {
				ts.v.SetNonce(fmt.Sprintf("nonce-%d", n))
			}
			w.Header().Set("DPoP-Nonce", ts.v.Nonce())
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusBadRequest)
			_, _ = io.WriteString(w, `{"error":"use_dpop_nonce"}`)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"access_token":"a","token_type":"DPoP"}`)
	}))
	t.Cleanup(ts.srv.Close)
	return ts
}

func post(t *testing.T, c *http.Client, u string) *http.Response {
	t.Helper()
	resp, err := c.Post(u, "application/x-www-form-urlencoded", strings.NewReader("grant_type=refresh_token&refresh_token=r"))
	require.NoError(t, err)
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func TestTransportRetriesOnceWithNonce(t *testing.T) {
	ts := newTokenServer(t, false)
	k, err := dpop.GenerateKey()
	require.NoError(t, err)
	cfg := dpop.NewConfig(k)
	c := cfg.Client(ts.srv.Client())

	resp := post(t, c, ts.srv.URL+"/token?ignored=1")
	body, _ := io.ReadAll(resp.Body)
	assert.Equal(t, http.StatusOK, resp.StatusCode, string(body))
	assert.EqualValues(t, 2, ts.hits.Load(), "one try without the nonce, one with it")
	assert.Equal(t, "nonce-0", cfg.Nonces.Get(mustURL(t, ts.srv.URL)))

	resp = post(t, c, ts.srv.URL+"/token")
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.EqualValues(t, 3, ts.hits.Load(), "the kept nonce goes with the next request")
}

func TestTransportNonceStormStops(t *testing.T) {
	ts := newTokenServer(t, true) // a new nonce with every refusal: never satisfied
	k, err := dpop.GenerateKey()
	require.NoError(t, err)
	c := dpop.NewConfig(k).Client(ts.srv.Client())

	resp := post(t, c, ts.srv.URL+"/token")
	assert.Equal(t, http.StatusBadRequest, resp.StatusCode)
	body, _ := io.ReadAll(resp.Body)
	assert.JSONEq(t, `{"error":"use_dpop_nonce"}`, string(body), "the refusal comes back readable")
	assert.EqualValues(t, 2, ts.hits.Load(), "retried once, no more")
}

func TestTransportLeavesOtherErrors(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Header().Set("DPoP-Nonce", "n")
		w.WriteHeader(http.StatusBadRequest)
		_, _ = io.WriteString(w, `{"error":"invalid_grant"}`)
	}))
	defer srv.Close()
	k, err := dpop.GenerateKey()
	require.NoError(t, err)
	cfg := dpop.NewConfig(k)
	resp := post(t, cfg.Client(srv.Client()), srv.URL)
	body, _ := io.ReadAll(resp.Body)
	assert.JSONEq(t, `{"error":"invalid_grant"}`, string(body))
	assert.EqualValues(t, 1, hits.Load())
	assert.Equal(t, "n", cfg.Nonces.Get(mustURL(t, srv.URL)), "a nonce is kept from any response (RFC 9449 §8.2)")
}

func TestNonces(t *testing.T) {
	var n dpop.Nonces
	a := mustURL(t, "https://AS.example/token")
	assert.False(t, n.Set(a, `bad"nonce`))
	assert.False(t, n.Set(a, ""))
	assert.True(t, n.Set(a, "ok"))
	assert.Equal(t, "ok", n.Get(mustURL(t, "https://as.example:443/other")), "one nonce per origin")
	assert.Equal(t, "", n.Get(mustURL(t, "https://rs.example/")))
	h := http.Header{}
	h.Add("DPoP-Nonce", "x")
	h.Add("DPoP-Nonce", "y")
	assert.False(t, n.Observe(a, h), "two nonces: neither")
	for i := range 200 {
		n.Set(mustURL(t, fmt.Sprintf("https://h%d.example/", i)), "v")
	}
	assert.LessOrEqual(t, countKept(&n, 200), 64, "bounded")
}

func countKept(n *dpop.Nonces, upto int) int {
	kept := 0
	for i := range upto {
		if n.Get(&url.URL{Scheme: "https", Host: fmt.Sprintf("h%d.example", i)}) != "" {
			kept++
		}
	}
	return kept
}

// kmsSigner stands for a key kept elsewhere: only Public and Sign.
type kmsSigner struct{ k *ecdsa.PrivateKey }

func (s kmsSigner) Public() crypto.PublicKey { return s.k.Public() }
func (s kmsSigner) Sign(r io.Reader, d []byte, o crypto.SignerOpts) ([]byte, error) {
	return s.k.Sign(r, d, o)
}

func TestOpaqueSigner(t *testing.T) {
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	k, err := dpop.NewKey(kmsSigner{ec})
	require.NoError(t, err)
	u := mustURL(t, "https://as.example/token")
	proof, err := k.Proof("POST", dpop.HTU(u), "", "")
	require.NoError(t, err)
	_, err = (&dpoptest.Verifier{}).Check(proofRequest("POST", "/token", proof), u, "")
	require.NoError(t, err)
	_, err = k.MarshalPrivateJWK()
	assert.Error(t, err, "a key kept elsewhere is not exported")
}
