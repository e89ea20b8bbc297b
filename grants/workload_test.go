package grants_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stepup-go/stepup"
	"github.com/stepup-go/stepup/grants"
)

// platform issues workload tokens, as a Kubernetes cluster or a CI
// service does, which the authorization server trusts.
type platform struct {
	issuer string
	key    *ecdsa.PrivateKey
}

func newPlatform(t *testing.T, as *authServer) *platform {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	p := &platform{issuer: "https://cluster.example", key: key}
	as.TrustJWTIssuer(p.issuer, &key.PublicKey)
	return p
}

// token signs a workload token for aud, valid for ttl (negative: expired).
func (p *platform) token(t *testing.T, aud string, ttl time.Duration) string {
	t.Helper()
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: p.key}, nil)
	require.NoError(t, err)
	s, err := jwt.Signed(signer).Claims(jwt.Claims{
		Issuer: p.issuer, Subject: "system:serviceaccount:ci:builder", Audience: jwt.Audience{aud},
		IssuedAt: jwt.NewNumericDate(time.Now().Add(-time.Hour)), Expiry: jwt.NewNumericDate(time.Now().Add(ttl)),
	}).Serialize()
	require.NoError(t, err)
	return s
}

// The workload's token is read from its file at each escalation: after
// the platform rotates it and the access token is revoked, the 401
// presents the new one. Step-up presents it for the union.
func TestWorkloadTokenFile(t *testing.T) {
	w := newWorld(t)
	w.as.GrantTypesSupported = []string{"urn:ietf:params:oauth:grant-type:jwt-bearer"}
	p := newPlatform(t, w.as)
	w.rs.needs = map[string]string{"/mcp/read": "read", "/mcp/write": "write"}
	file := filepath.Join(t.TempDir(), "token")
	first := p.token(t, w.as.IssuerID(), time.Hour)
	require.NoError(t, os.WriteFile(file, []byte(first+"\n"), 0o600))
	w.client(t, &grants.Workload{Token: grants.TokenFile(file), Discovery: disc()})

	_, err := w.get(t, "/mcp/read")
	require.NoError(t, err)
	second := p.token(t, w.as.IssuerID(), time.Hour)
	require.NoError(t, os.WriteFile(file, []byte(second), 0o600))
	w.as.Revoke(w.rs.tokens[0])
	_, err = w.get(t, "/mcp/read")
	require.NoError(t, err)
	_, err = w.get(t, "/mcp/write")
	require.NoError(t, err)

	reqs := w.as.TokenRequests()
	require.Len(t, reqs, 3)
	for _, r := range reqs {
		assert.Equal(t, "urn:ietf:params:oauth:grant-type:jwt-bearer", r.Form.Get("grant_type"))
		assert.Empty(t, r.AuthMethod, "no client authentication")
	}
	assert.Equal(t, first, reqs[0].Form.Get("assertion"))
	assert.Equal(t, second, reqs[1].Form.Get("assertion"))
	assert.Equal(t, "read write", reqs[2].Form.Get("scope"))
}

// A refused workload token ends the request: one token request, no other
// grant tried. invalid_grant (an expired token, another audience) is not
// remembered, so that the next request, with a rotated token, can
// succeed; unauthorized_client is, as a refusal.
func TestWorkloadRefused(t *testing.T) {
	for _, tc := range []struct {
		name     string
		token    func(p *platform, as *authServer) string
		refuse   map[string]string
		code     string
		declined bool
	}{
		{"expired", func(p *platform, as *authServer) string { return p.token(t, as.IssuerID(), -time.Minute) }, nil, "invalid_grant", false},
		{"for another audience", func(p *platform, _ *authServer) string { return p.token(t, "https://wrong.example", time.Hour) }, nil, "invalid_grant", false},
		{"unauthorized client", func(p *platform, as *authServer) string { return p.token(t, as.IssuerID(), time.Hour) }, map[string]string{"read": "unauthorized_client"}, "unauthorized_client", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t)
			p := newPlatform(t, w.as)
			w.as.RefuseScopes = tc.refuse
			w.rs.needs["/mcp/read"] = "read"
			tok := tc.token(p, w.as)
			w.client(t, &grants.Workload{Token: func(context.Context) (string, error) { return tok, nil }, Discovery: disc()})

			_, err := w.get(t, "/mcp/read")
			var te *grants.TokenError
			require.ErrorAs(t, err, &te)
			assert.Equal(t, tc.code, te.Code)
			assert.Equal(t, tc.declined, errors.Is(err, stepup.ErrDeclined))
			assert.NotContains(t, err.Error(), tok)
			reqs := w.as.TokenRequests()
			require.Len(t, reqs, 1, "no retry, no fallback")

			_, err = w.get(t, "/mcp/read")
			require.Error(t, err)
			want := 2
			if tc.declined {
				want = 1 // the guard remembers the refusal
			}
			reqs = w.as.TokenRequests()
			assert.Len(t, reqs, want)
			for _, r := range reqs {
				assert.Equal(t, "urn:ietf:params:oauth:grant-type:jwt-bearer", r.Form.Get("grant_type"))
			}
		})
	}
}

func TestWorkloadTokenMissing(t *testing.T) {
	w := newWorld(t)
	t.Setenv("STEPUP_TEST_WORKLOAD_TOKEN", "  ")
	for _, get := range []func(context.Context) (string, error){
		grants.TokenEnv("STEPUP_TEST_NO_SUCH_VARIABLE"),
		grants.TokenEnv("STEPUP_TEST_WORKLOAD_TOKEN"),
	} {
		w.client(t, &grants.Workload{Token: get, Discovery: disc()})
		_, err := w.get(t, "/mcp/a")
		require.ErrorIs(t, err, grants.ErrNoSubjectToken)
	}
	w.client(t, &grants.Workload{Token: grants.TokenFile(filepath.Join(t.TempDir(), "none")), Discovery: disc()})
	_, err := w.get(t, "/mcp/a")
	require.ErrorIs(t, err, os.ErrNotExist)
	assert.Empty(t, w.as.TokenRequests())
}

// TokenEnv reads the variable at each escalation.
func TestWorkloadTokenEnv(t *testing.T) {
	w := newWorld(t)
	p := newPlatform(t, w.as)
	first := p.token(t, w.as.IssuerID(), time.Hour)
	t.Setenv("STEPUP_TEST_WORKLOAD_TOKEN", first)
	w.client(t, &grants.Workload{Token: grants.TokenEnv("STEPUP_TEST_WORKLOAD_TOKEN"), Discovery: disc()})
	_, err := w.get(t, "/mcp/a")
	require.NoError(t, err)
	second := p.token(t, w.as.IssuerID(), 2*time.Hour)
	t.Setenv("STEPUP_TEST_WORKLOAD_TOKEN", second)
	w.as.Revoke(w.rs.tokens[0])
	_, err = w.get(t, "/mcp/a")
	require.NoError(t, err)
	reqs := w.as.TokenRequests()
	require.Len(t, reqs, 2)
	assert.Equal(t, first, reqs[0].Form.Get("assertion"))
	assert.Equal(t, second, reqs[1].Form.Get("assertion"))
}
