package stepup_test

import (
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"

	"github.com/stepup-go/stepup"
	"github.com/stepup-go/stepup/dpop"
)

// dpopFuzzServer answers every request with one response built from the
// fuzzer's input, and records the nonce of each proof it was sent.
type dpopFuzzServer struct {
	status int
	header http.Header
	body   string
	mu     sync.Mutex
	nonces []string
	proofs int
}

func (s *dpopFuzzServer) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body != nil {
		_, _ = io.Copy(io.Discard, req.Body)
		req.Body.Close()
	}
	s.mu.Lock()
	if p := req.Header.Get("DPoP"); p != "" {
		s.proofs++
		s.nonces = append(s.nonces, proofNonce(p))
	}
	s.mu.Unlock()
	return &http.Response{StatusCode: s.status, Header: s.header.Clone(), Body: io.NopCloser(strings.NewReader(s.body)), Request: req}, nil
}

// proofNonce is the nonce claim of a proof, read without verifying it.
func proofNonce(p string) string {
	parts := strings.Split(p, ".")
	if len(parts) != 3 {
		return "<malformed>"
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return "<malformed>"
	}
	var c struct {
		Nonce string `json:"nonce"`
	}
	if json.Unmarshal(b, &c) != nil {
		return "<malformed>"
	}
	return c.Nonce
}

// FuzzDPoPNonce feeds the nonce handling of both sides what a server
// controls: the status, WWW-Authenticate, DPoP-Nonce fields and the token
// endpoint's error body. Whatever they say, a resource request is sent at
// most 1+MaxReplays times and a token request at most twice, a nonce that
// is not 1*NQCHAR (RFC 9449 §8.1) never reaches a proof, and nothing
// panics.
func FuzzDPoPNonce(f *testing.F) {
	f.Add(401, `DPoP error="use_dpop_nonce"`, "n-1", "", `{"error":"use_dpop_nonce"}`)
	f.Add(401, `DPoP error="use_dpop_nonce", algs="ES256"`, "n-1", "n-2", "")
	f.Add(400, `DPoP error="use_dpop_nonce"`, `bad"nonce`, "", `{"error":"use_dpop_nonce"}`)
	f.Add(401, `DPoP error="invalid_token"`, "", "", "")
	f.Add(400, ``, "n\x00", "", `{"error":"use_dpop_nonce"`)
	f.Add(200, ``, strings.Repeat("x", 600), "", "")
	f.Fuzz(func(t *testing.T, status int, challenge, nonce1, nonce2, body string) {
		if status < 100 || status > 599 {
			status = 401
		}
		h := http.Header{}
		if challenge != "" {
			h.Set("WWW-Authenticate", challenge)
		}
		for _, n := range []string{nonce1, nonce2} {
			if n != "" {
				h.Add("DPoP-Nonce", n)
			}
		}
		key, err := dpop.GenerateKey()
		require.NoError(t, err)

		// The resource side.
		rs := &dpopFuzzServer{status: status, header: h, body: body}
		ts, err := stepup.NewTokenSource(fuzzResource, &oauth2.Token{AccessToken: "tok", TokenType: "DPoP"}, stepup.WithDPoP(key))
		require.NoError(t, err)
		tr := &stepup.Transport{Source: ts, Base: rs}
		req, _ := http.NewRequest(http.MethodGet, fuzzResource, nil)
		resp, err := tr.RoundTrip(req)
		if err == nil {
			resp.Body.Close()
		}
		assert.LessOrEqual(t, rs.proofs, 1+stepup.DefaultMaxReplays)
		checkNonces(t, rs.nonces)

		// The token endpoint side.
		as := &dpopFuzzServer{status: status, header: h, body: body}
		c := dpop.NewConfig(key).Client(&http.Client{Transport: as})
		resp, err = c.Post("https://as.example/token", "application/x-www-form-urlencoded", strings.NewReader("grant_type=refresh_token"))
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		assert.LessOrEqual(t, as.proofs, 2)
		checkNonces(t, as.nonces)
	})
}

func checkNonces(t *testing.T, nonces []string) {
	t.Helper()
	for _, n := range nonces {
		if n != "" {
			assert.True(t, dpop.ValidNonce(n) && len(n) <= 512, "nonce %q in a proof", n)
		}
	}
}
