package authcode_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stepup-go/stepup"
	"github.com/stepup-go/stepup/dpop"
	"github.com/stepup-go/stepup/internal/dpoptest"
)

// proofChecks records, for each request to the paths given, whether its
// DPoP proof verifies for that endpoint (RFC 9449 §4.3), before the
// server answers it as usual.
type proofChecks struct {
	mu   sync.Mutex
	v    dpoptest.Verifier
	jkts map[string][]string // path -> thumbprint of each valid proof, "" for none
}

func checkProofs(w *world, paths ...string) *proofChecks {
	pc := &proofChecks{jkts: map[string][]string{}}
	h := w.as.HTTP.Config.Handler
	w.as.HTTP.Config.Handler = http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		for _, p := range paths {
			if r.URL.Path == p {
				u, _ := url.Parse(w.as.HTTP.URL + p)
				jkt := ""
				if proof, err := pc.v.Check(r, u, ""); err == nil {
					jkt = proof.JKT
				}
				pc.mu.Lock()
				pc.jkts[p] = append(pc.jkts[p], jkt)
				pc.mu.Unlock()
			}
		}
		h.ServeHTTP(rw, r)
	})
	return pc
}

func (pc *proofChecks) of(path string) []string {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	return append([]string(nil), pc.jkts[path]...)
}

// With the source's DPoP key, the pushed authorization request and the
// code exchange carry its proofs (RFC 9449 §10.1, §5), the authorization
// request names its thumbprint (§10), and so do the refreshes.
func TestDPoPProofs(t *testing.T) {
	w := newWorld(t)
	w.as.PAR = true
	pc := checkProofs(w, "/par", "/token")
	key, err := dpop.GenerateKey()
	require.NoError(t, err)
	ctx := context.Background()
	g, err := w.esc.Escalate(ctx, &stepup.EscalationRequest{
		Reason: stepup.ReasonAuthorizationRequired, Scopes: stepup.Scopes{"read"}, MaxAge: stepup.NoMaxAge,
		Resource: w.rs.resource, ResourceMetadata: w.rs.metadataURL(), DPoP: dpop.NewConfig(key),
	})
	require.NoError(t, err)
	assert.Equal(t, []string{key.Thumbprint()}, pc.of("/par"))
	assert.Equal(t, []string{key.Thumbprint()}, pc.of("/token"))
	pushed := w.as.PushedRequests()
	require.Len(t, pushed, 1)
	assert.Equal(t, key.Thumbprint(), pushed[0].Get("dpop_jkt"))

	_, err = g.Refresh(dpop.NewContext(ctx, dpop.NewConfig(key)), g.Token, "")
	require.NoError(t, err)
	assert.Equal(t, []string{key.Thumbprint(), key.Thumbprint()}, pc.of("/token"), "the refresh too")
}

// A server that lists its DPoP algorithms without the key's is refused
// before anything is sent (RFC 9449 §5.1).
func TestDPoPAlgorithmRefused(t *testing.T) {
	w := newWorld(t)
	h := w.as.HTTP.Config.Handler
	w.as.HTTP.Config.Handler = http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/.well-known/oauth-authorization-server" {
			rec := &captured{header: http.Header{}}
			h.ServeHTTP(rec, r)
			var m map[string]any
			require.NoError(t, json.Unmarshal(rec.body, &m))
			m["dpop_signing_alg_values_supported"] = []string{"RS256"}
			writeJSON(rw, http.StatusOK, m)
			return
		}
		h.ServeHTTP(rw, r)
	})
	key, err := dpop.GenerateKey()
	require.NoError(t, err)
	_, err = w.esc.Escalate(context.Background(), &stepup.EscalationRequest{
		Reason: stepup.ReasonAuthorizationRequired, Scopes: stepup.Scopes{"read"}, MaxAge: stepup.NoMaxAge,
		Resource: w.rs.resource, ResourceMetadata: w.rs.metadataURL(), DPoP: dpop.NewConfig(key),
	})
	assert.ErrorContains(t, err, "not ES256")
	assert.Empty(t, w.as.AuthorizationRequests())
}

type captured struct {
	header http.Header
	body   []byte
}

func (c *captured) Header() http.Header         { return c.header }
func (c *captured) WriteHeader(int)             {}
func (c *captured) Write(b []byte) (int, error) { c.body = append(c.body, b...); return len(b), nil }
