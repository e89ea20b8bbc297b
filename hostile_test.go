package stepup_test

// Hostile servers. Each test puts the Transport in front of an
// adversarial resource server, or gives it an adversarial Escalator, and
// asserts four things: the work is bounded (server hits, Escalator calls,
// refreshes and bytes read are counted against exact upper bounds, never
// against a clock), no goroutine outlives the test (goleak), the token goes
// nowhere it must not, and nothing is lost (the server's response comes
// back intact, or a typed error does). Each test names the rule it guards.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"

	"github.com/stepup-go/stepup"
)

// A server that names a new scope in every 403 insufficient_scope makes
// each challenge a new one, so only the replay cap stops a request: exactly
// MaxReplays escalations and MaxReplays+1 sends per request, request after
// request, and never a refresh, which cannot widen scope (RFC 6749 §6).
// Each request fails with ErrReplayLimit, naming the last 403's challenge.
func TestHostileEndless403NewScopeEachTime(t *testing.T) {
	checkLeaks(t)
	w := newWorld(t)
	var seq atomic.Int32
	w.mux.HandleFunc("/x", func(rw http.ResponseWriter, r *http.Request) {
		if _, ok := w.check(rw, r); ok {
			w.challenge(rw, http.StatusForbidden, `Bearer error="insufficient_scope", scope="s%d", resource_metadata=%q`, seq.Add(1), w.metadataURL())
		}
	})
	esc := newEscalator(w)
	tr := w.transport(w.source(w.as.issue(true, "base"), stepup.WithScopes("base"), stepup.WithEscalator(esc)))
	c := &http.Client{Transport: tr}

	const requests = 10
	for i := int32(1); i <= requests; i++ {
		ce := w.mustStop(c, "/x", stepup.ErrReplayLimit)
		require.Equal(t, http.StatusForbidden, ce.Status)
		require.Equal(t, stepup.Scopes{fmt.Sprint("s", seq.Load())}, ce.Challenge.Scope)
		require.Equal(t, i*stepup.DefaultMaxReplays, esc.calls.Load(), "Escalator calls after request %d", i)
		require.Equal(t, i*(stepup.DefaultMaxReplays+1), w.hits.Load(), "sends after request %d", i)
	}

	// A higher cap is the bound then, not the guard.
	tr.MaxReplays = 8
	w.mustStop(c, "/x", stepup.ErrReplayLimit)
	assert.Equal(t, int32(requests*stepup.DefaultMaxReplays+8), esc.calls.Load())
	assert.Equal(t, int32(requests*(stepup.DefaultMaxReplays+1)+9), w.hits.Load())
	assert.Zero(t, w.as.refreshHits.Load(), "a refresh reached the token endpoint")

	// Each escalation asks for everything asked before plus the new scope:
	// the set grows by one per escalation the server provokes.
	for k, er := range esc.requests() {
		assert.Equal(t, stepup.ReasonInsufficientScope, er.Reason)
		require.Len(t, er.ChallengedScopes, 1)
		require.Len(t, er.Scopes, k+2, "escalation %d", k)
		assert.Equal(t, "base", er.Scopes[0])
		assert.Equal(t, er.ChallengedScopes[0], er.Scopes[k+1])
		assert.Equal(t, w.metadataURL(), er.ResourceMetadata)
	}
}

// A server that alternates 401 invalid_token and 403 insufficient_scope
// whatever token it gets cannot make the per-challenge guard loop; replays
// are raised to 10 so that only the guard can stop it. Per request: at most
// one refresh, one escalation and three sends, and a typed error at the
// end (ErrExhausted). Across requests: one escalation in the whole run,
// since the 403 came back after its escalation and is exhausted; and a
// rotated refresh token is never redeemed twice (OAuth 2.1 §4.3.1).
func TestHostilePingPong401And403ManyRequests(t *testing.T) {
	checkLeaks(t)
	w := newWorld(t)
	var seq atomic.Int32
	w.mux.HandleFunc("/x", func(rw http.ResponseWriter, r *http.Request) {
		if seq.Add(1)%2 == 1 {
			w.challenge(rw, http.StatusUnauthorized, `Bearer error="invalid_token"`)
		} else {
			w.challenge(rw, http.StatusForbidden, `Bearer error="insufficient_scope", scope="more"`)
		}
	})
	esc := newEscalator(w)
	tr := w.transport(w.source(w.as.issue(true, "a"), stepup.WithEscalator(esc)))
	tr.MaxReplays = 10
	c := &http.Client{Transport: tr}

	const requests = 20
	for i := range requests {
		hits, refreshes, escalations := w.hits.Load(), w.as.refreshHits.Load(), esc.calls.Load()
		ce := w.mustStop(c, "/x", stepup.ErrExhausted)
		require.Contains(t, []int{http.StatusUnauthorized, http.StatusForbidden}, ce.Status)
		require.LessOrEqual(t, w.hits.Load()-hits, int32(3), "sends of request %d", i)
		require.LessOrEqual(t, w.as.refreshHits.Load()-refreshes, int32(1), "refreshes of request %d", i)
		require.LessOrEqual(t, esc.calls.Load()-escalations, int32(1), "escalations of request %d", i)
	}
	assert.Equal(t, int32(1), esc.calls.Load(), "escalations in the whole run")
	assert.LessOrEqual(t, w.as.refreshHits.Load(), int32(requests))
	assert.Zero(t, w.as.reuses.Load(), "a rotated refresh token was redeemed twice")
}

// A 401 whose challenge carries no error code, or a 401 without any
// challenge, answers a request sent without a token: the Escalator runs the
// first authorization, and the replay with the new token draws the
// identical 401. That is the same challenge coming straight back after its
// remedy, though the Transport reads it as invalid_token now that a token
// went out: the request stops there with ErrExhausted (RFC 9110 §15.5.2).
// One consent prompt, no refresh, two sends.
func TestHostileIdenticalBare401RemediedOnce(t *testing.T) {
	for _, tc := range []struct {
		name         string
		header       []string
		issueRefresh bool
	}{
		{"Bearer without error, no refresh token", []string{`Bearer realm="files"`}, false},
		{"no challenge at all, no refresh token", nil, false},
		{"Bearer without error, refresh token", []string{`Bearer realm="files"`}, true},
		{"no challenge at all, refresh token", nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkLeaks(t)
			w := newWorld(t)
			w.as.RefreshAlways = tc.issueRefresh
			w.mux.HandleFunc("/x", func(rw http.ResponseWriter, r *http.Request) {
				rw.Header()["Www-Authenticate"] = tc.header
				rw.WriteHeader(http.StatusUnauthorized)
			})
			esc := newEscalator(w)
			c := &http.Client{Transport: w.transport(w.source(nil, stepup.WithEscalator(esc)))}

			ce := w.mustStop(c, "/x", stepup.ErrExhausted)

			assert.Equal(t, http.StatusUnauthorized, ce.Status)
			assert.Equal(t, int32(1), esc.calls.Load(), "Escalator calls (consent prompts) in one request")
			assert.Zero(t, w.as.refreshHits.Load(), "refreshes")
			assert.Equal(t, int32(2), w.hits.Load(), "sends")

			// The token it produced was never taken: later requests
			// are not escalated again either.
			for range 3 {
				w.mustStop(c, "/x", stepup.ErrExhausted)
			}
			assert.Equal(t, int32(1), esc.calls.Load(), "Escalator calls (consent prompts) in all")
		})
	}
}

// hostileStatic answers every request with a copy of one response, without
// a network, and closes request bodies as a RoundTripper must.
type hostileStatic struct {
	status int
	header http.Header
	calls  int
}

func (s *hostileStatic) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body != nil {
		req.Body.Close()
	}
	s.calls++
	return &http.Response{StatusCode: s.status, Header: s.header, Body: http.NoBody, Request: req}, nil
}

// A challenge header far over the parser's limits is not acted on: one of
// 1 MiB, one with 10,000 challenges on one line, one of 10,000 field lines,
// and one with MaxChallenges+1 challenges under the byte limit, each with a
// valid Bearer insufficient_scope first. One send, no Escalator call, no
// refresh, and the response comes back as the server sent it, header and
// body (RFC 9110 §5.6.1.2, the RoundTripper contract). The work is measured, not timed: stepup
// allocates under 16 KiB per such response (about 1 KiB for the 1 MiB one,
// as for a 60-byte header), so it neither copies the header nor builds
// anything in proportion to it.
func TestHostileHugeChallengeHeaderIgnored(t *testing.T) {
	const valid = `Bearer error="insufficient_scope", scope="admin", resource_metadata="https://x.example/prm"`
	oneMiB := valid + `, realm="` + strings.Repeat("r", 1<<20-len(valid)-len(`, realm="`)-1) + `"`
	require.Len(t, oneMiB, 1<<20)
	manyLines := make([]string, 10_000)
	for i := range manyLines {
		manyLines[i] = fmt.Sprintf(`Bearer error="insufficient_scope", scope="s%d"`, i)
	}
	cases := []struct {
		name  string
		lines []string
	}{
		{"1 MiB", []string{oneMiB}},
		{"10,000 challenges on one line", []string{valid + strings.Repeat(`, Basic realm="x"`, 10_000-1)}},
		{"10,000 field lines", manyLines},
		{"MaxChallenges+1 under the byte limit", []string{valid + strings.Repeat(", A", stepup.MaxChallenges)}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			checkLeaks(t)
			w := newWorld(t)
			w.base.MaxResponseHeaderBytes = 8 << 20 // let the header reach stepup
			w.mux.HandleFunc("/x", func(rw http.ResponseWriter, r *http.Request) {
				rw.Header()["Www-Authenticate"] = tc.lines
				rw.WriteHeader(http.StatusForbidden)
				fmt.Fprint(rw, "original body")
			})
			esc := newEscalator(w)
			tap := newLogTap()
			tr := w.transport(w.source(w.as.issue(true, "files:read"), stepup.WithEscalator(esc)))
			tr.Logger = slog.New(tap)

			resp, err := w.get(&http.Client{Transport: tr}, "/x")

			require.NoError(t, err)
			assert.Equal(t, http.StatusForbidden, resp.StatusCode)
			b, _ := io.ReadAll(resp.Body)
			assert.Equal(t, "original body", string(b))
			assert.True(t, slicesEqual(tc.lines, resp.Header.Values("Www-Authenticate")), "the header came back altered")
			assert.Equal(t, int32(1), w.hits.Load(), "sends")
			assert.Zero(t, esc.calls.Load())
			assert.Zero(t, w.as.refreshHits.Load())
			assert.Contains(t, tap.String(), "challenge ignored")
			assert.Contains(t, tap.String(), "over limit")
		})
	}

	t.Run("work", func(t *testing.T) {
		small := []string{`Bearer error="insufficient_scope", scope="a", scope="b"`} // malformed: ignored too
		perCall := func(lines []string) (bytes uint64, allocs float64) {
			esc := tokenEscalator(func(context.Context, *stepup.EscalationRequest) (*oauth2.Token, error) {
				t.Error("Escalator called")
				return nil, stepup.ErrDeclined
			})
			ts, err := stepup.NewTokenSource("https://api.example/mcp", &oauth2.Token{AccessToken: "at"}, stepup.WithEscalator(esc))
			require.NoError(t, err)
			base := &hostileStatic{status: http.StatusForbidden, header: http.Header{"Www-Authenticate": lines}}
			tr := &stepup.Transport{Base: base, Source: ts}
			req, err := http.NewRequest(http.MethodGet, "https://api.example/mcp", nil)
			require.NoError(t, err)
			run := func() {
				resp, err := tr.RoundTrip(req)
				if err != nil || resp.StatusCode != http.StatusForbidden {
					t.Fatalf("RoundTrip: %v", err)
				}
			}
			allocs = testing.AllocsPerRun(20, run)
			const n = 20
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			for range n {
				run()
			}
			runtime.ReadMemStats(&after)
			assert.Equal(t, 1+20+n, base.calls, "one send per RoundTrip") // AllocsPerRun runs once more to warm up
			return (after.TotalAlloc - before.TotalAlloc) / n, allocs
		}
		smallBytes, smallAllocs := perCall(small)
		t.Logf("small malformed header: %d B, %.0f allocs per RoundTrip", smallBytes, smallAllocs)
		for _, tc := range cases {
			b, a := perCall(tc.lines)
			t.Logf("%s: %d B, %.0f allocs per RoundTrip", tc.name, b, a)
			assert.Less(t, b, uint64(16<<10), "%s: stepup allocated in proportion to the header", tc.name)
		}
	})
}

func slicesEqual(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// Challenges that are otherwise valid Bearer (or DPoP) challenges but repeat
// a parameter, in any case, on one line or across field lines, or leave a
// quote unterminated, are never acted on: one send, no Escalator call, no
// refresh, no DPoP nonce taken, the response back as sent, and an event that
// says why (RFC 9110 §11.2). A repeated parameter is the
// attacker's pick of a remedy: error= insufficient_scope or invalid_token,
// resource_metadata= the resource's or another's.
func TestHostileMalformedChallengesNotActedOn(t *testing.T) {
	for _, tc := range []struct {
		name   string
		status int
		lines  []string
		nonce  string
	}{
		{"duplicate scope", 403, []string{`Bearer error="insufficient_scope", scope="read", scope="admin"`}, ""},
		{"duplicate error", 403, []string{`Bearer error="insufficient_scope", error="invalid_token", scope="a"`}, ""},
		{"duplicate error on 401", 401, []string{`Bearer error="invalid_token", error="insufficient_user_authentication", acr_values="phr"`}, ""},
		{"duplicate resource_metadata in another case", 403, []string{`Bearer error="insufficient_scope", scope="a", resource_metadata="https://rs.example/prm", RESOURCE_METADATA="https://evil.example/prm"`}, ""},
		{"duplicate with whitespace around =", 403, []string{`Bearer error="insufficient_scope", scope="a", scope = "b"`}, ""},
		{"duplicate token and quoted forms", 403, []string{`Bearer error=insufficient_scope, scope="a", error="insufficient_scope"`}, ""},
		{"duplicate across field lines", 403, []string{`Bearer error="insufficient_scope", scope="a"`, `scope="admin"`}, ""},
		{"duplicate in a DPoP challenge", 401, []string{`DPoP error="use_dpop_nonce", error="use_dpop_nonce", algs="ES256"`}, "n-1"},
		{"unterminated quote at the end", 403, []string{`Bearer error="insufficient_scope", scope="a b`}, ""},
		{"unterminated quote swallowing the next parameter", 403, []string{`Bearer error="insufficient_scope, scope="admin"`}, ""},
		{"escaped closing quote", 403, []string{`Bearer error="insufficient_scope", scope="a\"`}, ""},
		{"lone quote", 403, []string{`Bearer error="insufficient_scope", scope="a", realm="`}, ""},
		{"quote left open on one field line", 403, []string{`Bearer error="insufficient_scope", scope="a`, `b", realm="x"`}, ""},
		{"unterminated quote on 401", 401, []string{`Bearer error="invalid_token`}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkLeaks(t)
			w := newWorld(t)
			w.mux.HandleFunc("/x", func(rw http.ResponseWriter, r *http.Request) {
				rw.Header()["Www-Authenticate"] = tc.lines
				if tc.nonce != "" {
					rw.Header().Set("DPoP-Nonce", tc.nonce)
				}
				rw.WriteHeader(tc.status)
				fmt.Fprint(rw, "original body")
			})
			esc := newEscalator(w)
			tap := newLogTap()
			var nonces atomic.Int32
			tr := w.transport(w.source(w.as.issue(true, "files:read"), stepup.WithEscalator(esc)))
			tr.Logger = slog.New(tap)
			tr.DPoPNonce = func(*http.Request, string) error { nonces.Add(1); return nil }

			resp, err := w.get(&http.Client{Transport: tr}, "/x")

			require.NoError(t, err)
			assert.Equal(t, tc.status, resp.StatusCode)
			b, _ := io.ReadAll(resp.Body)
			assert.Equal(t, "original body", string(b))
			assert.Equal(t, tc.lines, resp.Header.Values("Www-Authenticate"))
			assert.Equal(t, int32(1), w.hits.Load(), "sends")
			assert.Zero(t, esc.calls.Load(), "Escalator calls")
			assert.Zero(t, w.as.refreshHits.Load(), "refreshes")
			assert.Zero(t, nonces.Load(), "DPoP nonces taken")
			assert.Contains(t, tap.String(), "challenge ignored")
			assert.Contains(t, tap.String(), "malformed")
		})
	}
}

// publicWorld is a resource server on 127.0.0.1 that the client reaches as
// https://example.com (the name in httptest's certificate), so that it is
// a public resource: one whose resource_metadata must not point at private
// or loopback addresses (MCP security best practices, SSRF).
type publicWorld struct {
	srv  *httptest.Server
	base *http.Transport
	hits atomic.Int32
}

const publicResource = "https://example.com/mcp"

func newPublicWorld(t *testing.T, h http.HandlerFunc) *publicWorld {
	t.Helper()
	p := &publicWorld{}
	p.srv = httptest.NewTLSServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		p.hits.Add(1)
		h(rw, r)
	}))
	t.Cleanup(p.srv.Close)
	p.base = p.srv.Client().Transport.(*http.Transport).Clone()
	addr := p.srv.Listener.Addr().String()
	p.base.DialContext = func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, addr) // every name is this server
	}
	t.Cleanup(p.base.CloseIdleConnections)
	return p
}

// metadataRecorder is an Escalator that keeps what it was given and
// declines, so the request ends with the documented *ChallengeError.
type metadataRecorder struct {
	mu       sync.Mutex
	seen     []string // EscalationRequest.ResourceMetadata
	received []string // EscalationRequest.Challenge.ResourceMetadata
}

func (m *metadataRecorder) Escalate(_ context.Context, req *stepup.EscalationRequest) (*stepup.Grant, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.seen = append(m.seen, req.ResourceMetadata)
	m.received = append(m.received, req.Challenge.ResourceMetadata)
	return nil, stepup.ErrDeclined
}

// hostileMetadataCase is a resource_metadata URL a hostile server sends and
// what the Escalator may see of it: the URL itself, or "" (refused).
type hostileMetadataCase struct {
	meta        string
	crossOrigin bool // Transport.AllowCrossOriginMetadata
	want        string
}

// runMetadataCases sends each case's resource_metadata in a 403
// insufficient_scope from a public resource and checks what reached the
// Escalator. The escalation itself goes ahead either way (EscalationRequest
// documents "" as "discovery falls back to the well-known URI"); the
// refusal is logged.
func runMetadataCases(t *testing.T, cases []hostileMetadataCase) {
	var meta atomic.Pointer[string]
	p := newPublicWorld(t, func(rw http.ResponseWriter, r *http.Request) {
		rw.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer error="insufficient_scope", scope="more", resource_metadata=%q`, *meta.Load()))
		rw.WriteHeader(http.StatusForbidden)
	})
	for _, tc := range cases {
		name := fmt.Sprintf("%s cross-origin=%v", tc.meta, tc.crossOrigin)
		t.Run(name, func(t *testing.T) {
			meta.Store(&tc.meta)
			hits := p.hits.Load()
			rec := &metadataRecorder{}
			ts, err := stepup.NewTokenSource(publicResource, &oauth2.Token{AccessToken: "at-" + secretMark}, stepup.WithEscalator(rec))
			require.NoError(t, err)
			tap := newLogTap()
			tr := &stepup.Transport{Base: p.base, Source: ts, AllowCrossOriginMetadata: tc.crossOrigin, Logger: slog.New(tap)}
			req, err := http.NewRequest(http.MethodGet, publicResource, nil)
			require.NoError(t, err)

			resp, err := (&http.Client{Transport: tr}).Do(req)

			if err == nil {
				resp.Body.Close()
			}
			var ee *stepup.ChallengeError
			require.ErrorAs(t, err, &ee)
			assert.ErrorIs(t, ee, stepup.ErrDeclined)
			assert.Equal(t, int32(1), p.hits.Load()-hits, "sends")
			require.Equal(t, []string{tc.want}, rec.seen, "what the Escalator saw as ResourceMetadata")
			assert.Equal(t, []string{tc.meta}, rec.received, "the challenge keeps what was received, as documented")
			if tc.want == "" {
				assert.Contains(t, tap.String(), "resource_metadata refused")
			}
		})
	}
}

// resource_metadata reaches the Escalator only when it is safe to fetch:
// http(s), https unless loopback, the resource's origin unless
// AllowCrossOriginMetadata, never a link-local address, nor a private or
// loopback one for a public resource (RFC 9728 §7.7, MCP security best practices, SSRF).
// Otherwise the Escalator sees ResourceMetadata == "", never the URL.
func TestHostileResourceMetadataRefused(t *testing.T) {
	checkLeaks(t)
	runMetadataCases(t, []hostileMetadataCase{
		// The resource's own origin: the control that shows a URL can get through.
		{"https://example.com/.well-known/oauth-protected-resource/mcp", false, "https://example.com/.well-known/oauth-protected-resource/mcp"},
		{"https://EXAMPLE.com:443/.well-known/oauth-protected-resource", false, "https://EXAMPLE.com:443/.well-known/oauth-protected-resource"},
		// Another origin, by default.
		{"https://evil.example/.well-known/oauth-protected-resource", false, ""},
		{"https://example.com.evil.example/prm", false, ""},
		{"https://example.com@evil.example/prm", false, ""},
		{"https://example.com:8443/prm", false, ""},
		{"//evil.example/prm", false, ""},
		{"/.well-known/oauth-protected-resource", false, ""},
		// Same origin, but with user information or a fragment.
		{"https://evil.example@example.com/prm", false, ""},
		{"https://example.com/prm#x", false, ""},
		// Plain http to a host that is not loopback.
		{"http://example.com/.well-known/oauth-protected-resource", false, ""},
		{"http://as.example/prm", true, ""},
		// Not http(s) at all.
		{"file:///etc/passwd", true, ""},
		{"javascript:alert(1)", true, ""},
		{"data:application/json,{}", true, ""},
		{"ftp://as.example/prm", true, ""},
		// Link-local, however spelled, even when other origins are allowed.
		{"http://169.254.169.254/latest/meta-data/iam/security-credentials/", false, ""},
		{"https://169.254.169.254/latest/meta-data/", false, ""},
		{"https://169.254.169.254/latest/meta-data/", true, ""},
		{"https://[fe80::1]/prm", true, ""},
		{"https://[fe80::1%25eth0]/prm", true, ""},
		{"https://[::ffff:169.254.169.254]/prm", true, ""},
		{"https://%31%36%39.254.169.254/prm", true, ""},
		{"https://0.0.0.0/prm", true, ""},
		{"https://[::]/prm", true, ""},
		{"https://224.0.0.1/prm", true, ""},
		// Private and loopback addresses for a public resource.
		{"https://10.0.0.1/prm", false, ""},
		{"https://10.0.0.1/prm", true, ""},
		{"https://172.16.0.1/prm", true, ""},
		{"https://192.168.1.10/prm", true, ""},
		{"https://[fd00::1]/prm", true, ""},
		{"https://127.0.0.1/prm", true, ""},
		{"https://[::1]/prm", true, ""},
		{"https://localhost/prm", true, ""},
		{"https://app.localhost/prm", true, ""},
		// Another public origin, allowed.
		{"https://as.example/.well-known/oauth-protected-resource", true, "https://as.example/.well-known/oauth-protected-resource"},
	})
}

// With AllowCrossOriginMetadata, resource_metadata is still refused when it
// points at a link-local address, or at a loopback or private one for a
// public resource (MCP security best practices, SSRF), however the host is spelled. The numeric IPv4
// forms that inet_aton accepts are no DNS names: the cgo resolver (Go's
// default on macOS), curl and browsers turn them into the address:
// 0xa9fea9fe, 2852039166, 169.254.43518 and 0251.0376.0251.0376 are
// 169.254.169.254 (the cloud metadata endpoint); 127.1, 2130706433 and
// 0x7f.1 are 127.0.0.1; 0 is 0.0.0.0. A trailing dot makes no other host:
// localhost. and app.localhost. are loopback names (RFC 6761), which
// systemd-resolved answers with 127.0.0.1.
func TestHostileResourceMetadataNumericHostsRefused(t *testing.T) {
	checkLeaks(t)
	var cases []hostileMetadataCase
	for _, meta := range []string{
		"https://0xa9fea9fe/latest/meta-data/",
		"https://2852039166/latest/meta-data/",
		"https://169.254.43518/latest/meta-data/",
		"https://0251.0376.0251.0376/latest/meta-data/",
		"https://169.254.169.254./latest/meta-data/",
		"https://127.1/prm",
		"https://2130706433/prm",
		"https://0x7f.1/prm",
		"https://0/prm",
		"https://localhost./prm",
		"https://app.localhost./prm",
	} {
		cases = append(cases, hostileMetadataCase{meta: meta, crossOrigin: true, want: ""})
	}
	// The control: a public name with a trailing dot gets through.
	cases = append(cases, hostileMetadataCase{meta: "https://as.example./prm", crossOrigin: true, want: "https://as.example./prm"})
	runMetadataCases(t, cases)
}

// The token of a resource goes to its origin only: on a redirect chain that
// hops to another origin and back (A → B → A), both visits to A carry it
// and the visit to B does not (RFC 6750 §5.3); a challenge from B,
// resource_metadata and all, triggers nothing and comes back as B sent it
// .
func TestHostileRedirectHopsOriginAndBack(t *testing.T) {
	checkLeaks(t)
	w := newWorld(t)
	type visit struct{ server, path, auth string }
	var mu sync.Mutex
	var visits []visit
	record := func(server string, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		visits = append(visits, visit{server, r.URL.Path, r.Header.Get("Authorization")})
	}
	b := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		record("B", r)
		switch r.URL.Path {
		case "/hop":
			rw.Header().Set("WWW-Authenticate", `Bearer error="insufficient_scope", scope="b:all"`)
			http.Redirect(rw, r, w.rs.URL+r.URL.Query().Get("back"), http.StatusTemporaryRedirect)
		case "/final":
			w.challenge(rw, http.StatusForbidden, `Bearer error="insufficient_scope", scope="b:all", resource_metadata=%q`, "http://"+r.Host+"/prm")
		}
	}))
	t.Cleanup(b.Close)
	w.mux.HandleFunc("/start", func(rw http.ResponseWriter, r *http.Request) {
		record("A", r)
		http.Redirect(rw, r, b.URL+"/hop?back="+url.QueryEscape(r.URL.Query().Get("back")), http.StatusTemporaryRedirect)
	})
	w.mux.HandleFunc("/home", func(rw http.ResponseWriter, r *http.Request) {
		record("A", r)
		if _, ok := w.check(rw, r); ok {
			fmt.Fprint(rw, "home")
		}
	})
	w.mux.HandleFunc("/again", func(rw http.ResponseWriter, r *http.Request) {
		record("A", r)
		if _, ok := w.check(rw, r); ok {
			http.Redirect(rw, r, b.URL+"/final", http.StatusTemporaryRedirect)
		}
	})
	tok := w.as.issue(true, "files:read")
	esc := newEscalator(w)
	c := &http.Client{Transport: w.transport(w.source(tok, stepup.WithEscalator(esc)))}
	bearer := "Bearer " + tok.AccessToken

	status, body := w.mustGet(c, "/start?back=/home")
	assert.Equal(t, http.StatusOK, status)
	assert.Equal(t, "home", body)
	mu.Lock()
	assert.Equal(t, []visit{{"A", "/start", bearer}, {"B", "/hop", ""}, {"A", "/home", bearer}}, visits)
	visits = nil
	mu.Unlock()

	resp, err := w.get(c, "/start?back=/again")
	require.NoError(t, err)
	assert.Equal(t, http.StatusForbidden, resp.StatusCode)
	got, _ := io.ReadAll(resp.Body)
	assert.Equal(t, "challenge 403", string(got))
	assert.Contains(t, resp.Header.Get("WWW-Authenticate"), "b:all", "B's challenge came back altered")
	mu.Lock()
	assert.Equal(t, []visit{{"A", "/start", bearer}, {"B", "/hop", ""}, {"A", "/again", bearer}, {"B", "/final", ""}}, visits)
	mu.Unlock()
	assert.Zero(t, esc.calls.Load(), "B's challenge reached the Escalator")
	assert.Zero(t, w.as.refreshHits.Load())
}

// A server that stalls in the middle of a body, or before its headers,
// holds the caller only until the caller's context ends; then everything
// unwinds: the call or the body read returns the context's error, the
// server sees the connection go, no goroutine is left (the RoundTripper contract,
// "waiters honour their own context"). Stalling the body of a challenge
// that declares a short length stalls the drain stepup does before the
// replay : the caller's context ends that too. (A challenge body
// of unknown or greater length is not drained: see
// TestHostileChallengeBodyStallsBeforeReplay.)
func TestHostileStallingServer(t *testing.T) {
	for _, tc := range []struct {
		name       string
		stallOn403 bool // stall in the challenge's body instead of the replay
		headers    bool // the stalled response has sent its headers
	}{
		{"mid-body on the replay", false, true},
		{"before the headers of the replay", false, false},
		{"mid-body on a challenge of declared short length", true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkLeaks(t)
			w := newWorld(t)
			stalled := make(chan struct{}, 1)
			handlerDone := make(chan struct{}, 2)
			w.mux.HandleFunc("/slow", func(rw http.ResponseWriter, r *http.Request) {
				defer func() { handlerDone <- struct{}{} }()
				g, ok := w.check(rw, r)
				if !ok {
					return
				}
				if g.scopes.Contains("slow") == tc.stallOn403 {
					w.challenge(rw, http.StatusForbidden, `Bearer error="insufficient_scope", scope="slow"`)
					return
				}
				if tc.stallOn403 {
					rw.Header().Set("WWW-Authenticate", `Bearer error="insufficient_scope", scope="slow"`)
					rw.Header().Set("Content-Length", "1024")
					rw.WriteHeader(http.StatusForbidden)
				}
				if tc.headers {
					fmt.Fprint(rw, "partial")
					rw.(http.Flusher).Flush()
				}
				stalled <- struct{}{}
				<-r.Context().Done() // stall until the client goes away
			})
			esc := newEscalator(w)
			c := &http.Client{Transport: w.transport(w.source(w.as.issue(true, "files:read"), stepup.WithEscalator(esc)))}

			ctx, cancel := context.WithCancel(w.ctx())
			defer cancel()
			gotPartial := make(chan struct{}, 1)
			result := make(chan error, 1)
			go func() {
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, w.rs.URL+"/slow", nil)
				resp, err := c.Do(req)
				if err != nil {
					result <- err
					return
				}
				defer resp.Body.Close()
				buf := make([]byte, len("partial"))
				if _, err := io.ReadFull(resp.Body, buf); err != nil || string(buf) != "partial" {
					result <- fmt.Errorf("partial body %q: %v", buf, err)
					return
				}
				gotPartial <- struct{}{}
				_, err = io.ReadAll(resp.Body)
				result <- err
			}()
			recv(t, stalled)
			if tc.headers && !tc.stallOn403 {
				recv(t, gotPartial) // the caller holds the replay's response
			}
			cancel()
			err := recv(t, result)

			require.Error(t, err)
			assert.ErrorIs(t, err, context.Canceled)
			if tc.stallOn403 {
				recv(t, handlerDone) // the stalled handler saw the client go
				// Nothing was replayed, and the escalation never started:
				// the challenge was still being drained.
				assert.Equal(t, int32(1), w.hits.Load(), "sends")
				assert.Zero(t, esc.calls.Load())
			} else {
				recv(t, handlerDone)
				recv(t, handlerDone) // the stalled handler saw the client go
				assert.Equal(t, int32(2), w.hits.Load(), "sends")
				assert.Equal(t, int32(1), esc.calls.Load())
			}
		})
	}
}

// A challenge whose body stalls after the headers does not hold the
// request when the body's length is unknown or over 64 KiB: stepup closes
// it unread rather than wait for bytes that may never come ,
// escalates and replays, and the caller gets the replay's response without
// cancelling anything; the stalled handler sees its client go.
func TestHostileChallengeBodyStallsBeforeReplay(t *testing.T) {
	for _, tc := range []struct {
		name          string
		contentLength string // "" for none: the body is chunked
	}{
		{"no Content-Length", ""},
		{"Content-Length over 64 KiB", strconv.Itoa(1 << 20)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkLeaks(t)
			w := newWorld(t)
			left := make(chan struct{}, 1)
			w.mux.HandleFunc("/slow", func(rw http.ResponseWriter, r *http.Request) {
				g, ok := w.check(rw, r)
				if !ok {
					return
				}
				if g.scopes.Contains("slow") {
					fmt.Fprint(rw, "ok")
					return
				}
				rw.Header().Set("WWW-Authenticate", `Bearer error="insufficient_scope", scope="slow"`)
				if tc.contentLength != "" {
					rw.Header().Set("Content-Length", tc.contentLength)
				}
				rw.WriteHeader(http.StatusForbidden)
				fmt.Fprint(rw, "partial")
				rw.(http.Flusher).Flush()
				<-r.Context().Done() // stall until the client goes away
				left <- struct{}{}
			})
			esc := newEscalator(w)
			c := &http.Client{Transport: w.transport(w.source(w.as.issue(true, "files:read"), stepup.WithEscalator(esc)))}

			status, body := w.mustGet(c, "/slow") // a stalled drain fails here, after testTimeout

			assert.Equal(t, http.StatusOK, status)
			assert.Equal(t, "ok", body)
			recv(t, left) // closing the body unread let the connection go
			assert.Equal(t, int32(2), w.hits.Load(), "sends")
			assert.Equal(t, int32(1), esc.calls.Load())
		})
	}
}

// An Escalator that panics does not take the process down. The panic
// becomes the documented *ChallengeError (not declined, with the reason and
// status of the challenge, its message free of the token); the request is
// not replayed; no refresh runs.
func TestHostileEscalatorPanics(t *testing.T) {
	for _, tc := range []struct {
		name string
		boom func(token string)
	}{
		{"string", func(token string) { panic("cannot use " + token) }},
		{"error", func(token string) { panic(fmt.Errorf("cannot use %s", token)) }},
		{"nil", func(string) { panic(nil) }},
		{"runtime error", func(string) {
			var m map[string]int
			//lint:ignore SA5000 the panic is the point: a runtime error from inside the Escalator
			m["x"]++
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkLeaks(t)
			w := newWorld(t)
			w.protect("/write", "files:write")
			var calls atomic.Int32
			esc := tokenEscalator(func(_ context.Context, req *stepup.EscalationRequest) (*oauth2.Token, error) {
				calls.Add(1)
				tc.boom(req.RejectedToken.AccessToken)
				return nil, nil
			})
			c := &http.Client{Transport: w.transport(w.source(w.as.issue(true, "files:read"), stepup.WithEscalator(esc)))}

			_, err := w.get(c, "/write")

			var ee *stepup.ChallengeError
			require.ErrorAs(t, err, &ee)
			assert.NotErrorIs(t, ee, stepup.ErrDeclined)
			assert.Equal(t, stepup.ReasonInsufficientScope, ee.Reason)
			assert.Equal(t, http.StatusForbidden, ee.Status)
			assert.Equal(t, stepup.Scopes{"files:write"}, ee.Challenge.Scope)
			assert.Contains(t, err.Error(), "panic")
			assert.NotContains(t, err.Error(), secretMark)
			assert.Equal(t, int32(1), calls.Load(), "Escalator calls")
			assert.Equal(t, int32(1), w.hits.Load(), "sends")
			assert.Zero(t, w.as.refreshHits.Load())
		})
	}
}

// An Escalator that ends its goroutine with runtime.Goexit (what t.FailNow
// does) never returns, but its flight still ends: the request gets the
// documented *ChallengeError, as for a panic, rather than blocking until
// its context ends. Goexit runs the Escalator's deferred
// calls, and nothing is left running.
func TestHostileEscalatorGoexit(t *testing.T) {
	checkLeaks(t)
	w := newWorld(t)
	w.protect("/write", "files:write")
	exited := make(chan struct{})
	esc := tokenEscalator(func(context.Context, *stepup.EscalationRequest) (*oauth2.Token, error) {
		defer close(exited)
		runtime.Goexit()
		return nil, nil
	})
	c := &http.Client{Transport: w.transport(w.source(w.as.issue(true, "files:read"), stepup.WithEscalator(esc)))}
	ctx, cancel := context.WithCancel(w.ctx())
	defer cancel() // on failure, unblocks the request below
	result := make(chan error, 1)
	go func() {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, w.rs.URL+"/write", nil)
		resp, err := c.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		result <- err
	}()
	recv(t, exited)

	err := recv(t, result) // a hang fails here, after testTimeout

	var ee *stepup.ChallengeError
	require.ErrorAs(t, err, &ee)
	assert.NotErrorIs(t, err, context.Canceled)
	assert.NotErrorIs(t, ee, stepup.ErrDeclined)
	assert.Equal(t, stepup.ReasonInsufficientScope, ee.Reason)
	assert.Equal(t, http.StatusForbidden, ee.Status)
	assert.Contains(t, err.Error(), "Goexit")
	assert.Equal(t, int32(1), w.hits.Load(), "sends")
}

// An Escalator that panics, or ends its goroutine with runtime.Goexit,
// while 50 requests wait for it: one call, and every one of the 50 gets the
// *ChallengeError. A failure is not remembered like a refusal,
// so the Transport carries on: the next request escalates again and
// succeeds.
func TestHostileEscalatorPanicsWithWaiters(t *testing.T) {
	for _, tc := range []struct {
		name string
		die  func()
		want string // in the error's message
	}{
		{"panic", func() { panic("the consent page crashed") }, "panic"},
		{"Goexit", runtime.Goexit, "Goexit"},
	} {
		t.Run(tc.name, func(t *testing.T) { testEscalatorDiesWithWaiters(t, tc.die, tc.want) })
	}
}

func testEscalatorDiesWithWaiters(t *testing.T, die func(), want string) {
	checkLeaks(t)
	const n = 50
	w := newWorld(t)
	w.protect("/write", "files:write")
	var joined atomic.Int32
	all := make(chan struct{})
	tap := newLogTap()
	tap.on = func(r slog.Record) {
		if r.Message == "stepup: waiting for an escalation in progress" && joined.Add(1) == n-1 {
			close(all)
		}
	}
	var calls atomic.Int32
	var healthy atomic.Bool
	login := newEscalator(w)
	esc := tokenEscalator(func(ctx context.Context, req *stepup.EscalationRequest) (*oauth2.Token, error) {
		calls.Add(1)
		if healthy.Load() {
			return login.escalate(ctx, req)
		}
		select {
		case <-all: // every request waits for this call
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		die()
		return nil, errors.New("unreachable")
	})
	tr := w.transport(w.source(w.as.issue(true, "files:read"), stepup.WithEscalator(esc)))
	tr.Logger = slog.New(tap)
	c := &http.Client{Transport: tr}

	errs := make(chan error, n)
	for range n {
		go func() {
			_, err := w.get(c, "/write")
			errs <- err
		}()
	}
	typed := 0
	for range n {
		var ee *stepup.ChallengeError
		if err := recv(t, errs); errors.As(err, &ee) && !errors.Is(ee, stepup.ErrDeclined) && strings.Contains(err.Error(), want) {
			typed++
		}
	}

	assert.Equal(t, n, typed, "requests that got the *ChallengeError")
	assert.Equal(t, int32(1), calls.Load(), "Escalator calls")
	assert.Equal(t, int32(n), w.hits.Load(), "sends")
	healthy.Store(true)
	status, _ := w.mustGet(c, "/write")
	assert.Equal(t, http.StatusOK, status)
	assert.Equal(t, int32(2), calls.Load())
}

// An Escalator that does not return (a user slow to come back to the
// consent page) while 1,000 requests wait for it: when every caller cancels,
// every call returns at once with context.Canceled. The escalation goes on:
// one Escalator call for all of them, 1,000 sends and no replay. When the
// user consents after all, the next request uses that grant without a
// second prompt.
func TestHostileEscalatorNeverReturnsThousandCallersCancel(t *testing.T) {
	checkLeaks(t)
	const n = 1000
	w := newWorld(t)
	w.base.MaxConnsPerHost = 64
	w.protect("/write", "files:write")
	esc := newEscalator(w)
	esc.entered = make(chan *stepup.EscalationRequest, 2)
	esc.gate = make(chan struct{}) // the user, who does not come
	var joined atomic.Int32
	all := make(chan struct{})
	tap := newLogTap()
	tap.on = func(r slog.Record) {
		if r.Message == "stepup: waiting for an escalation in progress" && joined.Add(1) == n-1 {
			close(all)
		}
	}
	tr := w.transport(w.source(w.as.issue(true, "files:read"), stepup.WithEscalator(esc)))
	tr.Logger = slog.New(tap)
	c := &http.Client{Transport: tr}

	cancels := make([]context.CancelFunc, n)
	errs := make(chan error, n)
	for i := range n {
		ctx, cancel := context.WithCancel(w.ctx())
		cancels[i] = cancel
		go func() {
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, w.rs.URL+"/write", nil)
			resp, err := c.Do(req)
			if err == nil {
				resp.Body.Close()
			}
			errs <- err
		}()
	}
	recv(t, esc.entered)
	recv(t, all) // 1 caller runs the escalation, 999 wait for it
	for _, cancel := range cancels {
		cancel()
	}
	canceled := 0
	for range n {
		if errors.Is(recv(t, errs), context.Canceled) {
			canceled++
		}
	}

	assert.Equal(t, n, canceled, "calls that returned context.Canceled")
	esc.mu.Lock()
	escCtx := esc.ctxs[0]
	esc.mu.Unlock()
	assert.NoError(t, escCtx.Err(), "the escalation outlives its callers")
	assert.Equal(t, int32(1), esc.calls.Load(), "Escalator calls")
	assert.Equal(t, int32(n), w.hits.Load(), "sends")
	assert.Zero(t, w.as.refreshHits.Load())

	close(esc.gate) // the user consents, late
	status, _ := w.mustGet(c, "/write")
	assert.Equal(t, http.StatusOK, status)
	assert.Equal(t, int32(1), esc.calls.Load(), "the late consent serves the next request")
}

// hostileBodyCounter wraps a RoundTripper and counts, per response, the
// bytes read from its body and whether it was closed.
type hostileBodyCounter struct {
	base   http.RoundTripper
	mu     sync.Mutex
	bodies []*countedBody
}

type countedBody struct {
	rc     io.ReadCloser
	read   atomic.Int64
	closed atomic.Bool
}

func (c *countedBody) Read(p []byte) (int, error) {
	n, err := c.rc.Read(p)
	c.read.Add(int64(n))
	return n, err
}

func (c *countedBody) Close() error {
	c.closed.Store(true)
	return c.rc.Close()
}

func (h *hostileBodyCounter) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := h.base.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	cb := &countedBody{rc: resp.Body}
	resp.Body = cb
	h.mu.Lock()
	h.bodies = append(h.bodies, cb)
	h.mu.Unlock()
	return resp, nil
}

func (h *hostileBodyCounter) responses() []*countedBody {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]*countedBody(nil), h.bodies...)
}

// A 403 whose body is 1 GiB, generated as it is sent and never stored:
// stepup reads none of it, whether it replays, fails or hands the 403 back,
// since the body's length is unknown or over 64 KiB (RoundTrip's doc); the
// server gets only as far as the socket buffers let it before the
// connection goes ( "never read more than a bounded amount of any
// response body", the RoundTripper contract, the RoundTripper contract).
func TestHostileGiBChallengeBodyReadBounded(t *testing.T) {
	const gib = 1 << 30
	chunk := bytes.Repeat([]byte("0123456789abcdef"), 4096)
	for _, tc := range []struct {
		name          string
		escalator     string // "login", "decline" or "" (none)
		contentLength bool
	}{
		{"escalated and replayed", "login", false},
		{"escalated and replayed, with Content-Length", "login", true},
		{"declined", "decline", false},
		{"no Escalator: returned untouched", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkLeaks(t)
			w := newWorld(t)
			t.Cleanup(w.rs.CloseClientConnections) // a stuck writer must not hold Close
			var written atomic.Int64
			handlers := make(chan struct{}, 2)
			w.mux.HandleFunc("/big", func(rw http.ResponseWriter, r *http.Request) {
				defer func() { handlers <- struct{}{} }()
				g, ok := w.check(rw, r)
				if !ok {
					return
				}
				if g.scopes.Contains("big") {
					fmt.Fprint(rw, "ok")
					return
				}
				rw.Header().Set("WWW-Authenticate", `Bearer error="insufficient_scope", scope="big"`)
				if tc.contentLength {
					rw.Header().Set("Content-Length", strconv.Itoa(gib))
				}
				rw.WriteHeader(http.StatusForbidden)
				for written.Load() < gib {
					n, err := rw.Write(chunk)
					written.Add(int64(n))
					if err != nil {
						return
					}
				}
			})
			counter := &hostileBodyCounter{base: w.base}
			login := newEscalator(w)
			var opts []stepup.TokenSourceOption
			switch tc.escalator {
			case "login":
				opts = append(opts, stepup.WithEscalator(login))
			case "decline":
				login.decline.Store(true)
				opts = append(opts, stepup.WithEscalator(login))
			}
			tr := &stepup.Transport{Base: counter, Source: w.source(w.as.issue(true, "files:read"), opts...)}
			ctx, cancel := context.WithTimeout(w.ctx(), testTimeout)
			defer cancel()
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, w.rs.URL+"/big", nil)
			require.NoError(t, err)

			resp, err := tr.RoundTrip(req)

			bodies := counter.responses()
			require.NotEmpty(t, bodies)
			readByStepup := bodies[0].read.Load() // before the caller reads anything
			switch tc.escalator {
			case "login":
				require.NoError(t, err)
				require.Len(t, bodies, 2, "sends")
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				assert.Equal(t, "ok", string(b))
				assert.True(t, bodies[0].closed.Load(), "the 403 was not closed before the replay")
				assert.Zero(t, readByStepup, "stepup drained a body of unknown or long length")
				assert.Equal(t, int32(1), login.calls.Load())
				recv(t, handlers)
			case "decline":
				var ee *stepup.ChallengeError
				require.ErrorAs(t, err, &ee)
				assert.ErrorIs(t, ee, stepup.ErrDeclined)
				require.Len(t, bodies, 1, "sends")
				assert.True(t, bodies[0].closed.Load(), "the 403 was not closed")
				assert.Zero(t, readByStepup, "stepup drained a body of unknown or long length")
			default:
				require.NoError(t, err)
				require.Len(t, bodies, 1, "sends")
				assert.Equal(t, http.StatusForbidden, resp.StatusCode)
				assert.Zero(t, readByStepup, "stepup read the body of a response it hands back")
				assert.False(t, bodies[0].closed.Load())
				prefix := make([]byte, 1<<20)
				_, err := io.ReadFull(resp.Body, prefix)
				require.NoError(t, err)
				assert.True(t, bytes.Equal(bytes.Repeat(chunk, 16), prefix), "the caller's body is not the server's")
				resp.Body.Close()
			}
			recv(t, handlers) // the 1 GiB writer stopped
			t.Logf("stepup read %d B of the 1 GiB body; the server got %d B out before the connection went", readByStepup, written.Load())
			assert.Less(t, written.Load(), int64(gib/8), "the server wrote most of the GiB")
			assert.Zero(t, w.as.refreshHits.Load())
		})
	}
}

// hostileSeeded is a deterministic stream of pseudo-random bytes: the same
// seed gives the same bytes, and nothing is stored.
type hostileSeeded struct {
	rng  *rand.ChaCha8
	left int64
}

func newHostileSeeded(seed byte, n int64) *hostileSeeded {
	var s [32]byte
	s[0] = seed
	return &hostileSeeded{rng: rand.NewChaCha8(s), left: n}
}

func (s *hostileSeeded) Read(p []byte) (int, error) {
	if s.left <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > s.left {
		p = p[:s.left]
	}
	n, _ := s.rng.Read(p)
	s.left -= int64(n)
	return n, nil
}

// heapSampler passes writes on and samples the heap every so many bytes,
// keeping the largest HeapInuse seen.
type heapSampler struct {
	w     io.Writer
	every int64
	n     int64
	peak  *atomic.Uint64
}

func (h *heapSampler) Write(p []byte) (int, error) {
	before := h.n / h.every
	h.n += int64(len(p))
	if h.n/h.every != before {
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		for {
			old := h.peak.Load()
			if ms.HeapInuse <= old || h.peak.CompareAndSwap(old, ms.HeapInuse) {
				break
			}
		}
	}
	return h.w.Write(p)
}

// A 100 MiB request body replayed through GetBody reaches the server twice,
// byte-identical (it hashes what it receives), with one GetBody call; and
// stepup does not buffer it: the whole process, client and server,
// allocates a small fraction of the body's size during the request, and the
// heap sampled every 8 MiB of upload stays flat (the RoundTripper contract). The
// figures are logged. It takes about 2 s under the race detector.
func TestHostileHundredMiBBodyReplayedThroughGetBody(t *testing.T) {
	checkLeaks(t)
	const size int64 = 100 << 20
	const seed = 7
	h := sha256.New()
	_, err := io.Copy(h, newHostileSeeded(seed, size))
	require.NoError(t, err)
	want := h.Sum(nil)

	w := newWorld(t)
	var peak atomic.Uint64
	var mu sync.Mutex
	type upload struct {
		n   int64
		sum []byte
	}
	var uploads []upload
	w.mux.HandleFunc("POST /upload", func(rw http.ResponseWriter, r *http.Request) {
		h := sha256.New()
		n, _ := io.Copy(&heapSampler{w: h, every: 8 << 20, peak: &peak}, r.Body)
		mu.Lock()
		uploads = append(uploads, upload{n, h.Sum(nil)})
		mu.Unlock()
		g, ok := w.check(rw, r)
		if !ok {
			return
		}
		if !g.scopes.Contains("upload") {
			w.challenge(rw, http.StatusForbidden, `Bearer error="insufficient_scope", scope="upload"`)
			return
		}
		fmt.Fprint(rw, "stored")
	})
	esc := newEscalator(w)
	c := &http.Client{Transport: w.transport(w.source(w.as.issue(true, "files:read"), stepup.WithEscalator(esc)))}
	var getBodies atomic.Int32
	ctx, cancel := context.WithTimeout(w.ctx(), testTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.rs.URL+"/upload", newHostileSeeded(seed, size))
	require.NoError(t, err)
	req.ContentLength = size
	req.GetBody = func() (io.ReadCloser, error) {
		getBodies.Add(1)
		return io.NopCloser(newHostileSeeded(seed, size)), nil
	}

	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	resp, err := c.Do(req)
	runtime.ReadMemStats(&after)

	require.NoError(t, err)
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "stored", string(b))
	mu.Lock()
	require.Len(t, uploads, 2, "sends")
	for i, u := range uploads {
		assert.Equal(t, size, u.n, "send %d: bytes", i)
		assert.Equal(t, want, u.sum, "send %d: the body differs", i)
	}
	mu.Unlock()
	assert.Equal(t, int32(1), getBodies.Load(), "GetBody calls")
	assert.Equal(t, int32(1), esc.calls.Load())
	allocated := after.TotalAlloc - before.TotalAlloc
	heapGrowth := int64(peak.Load()) - int64(before.HeapInuse)
	t.Logf("body %d MiB sent twice: %.1f MiB allocated by the whole process during the request; peak HeapInuse %.1f MiB (%+.1f MiB over the %.1f MiB before)",
		size>>20, float64(allocated)/(1<<20), float64(peak.Load())/(1<<20), float64(heapGrowth)/(1<<20), float64(before.HeapInuse)/(1<<20))
	assert.Less(t, allocated, uint64(size/8), "the body was buffered")
	assert.Less(t, heapGrowth, size/8, "the heap grew with the body")
}

// A body that cannot be had again (no GetBody) is consumed by the first
// send and never resent. Its challenge is remedied all the same (one
// Escalator call for the 403, one refresh for the 401), so that the
// caller's own retry can succeed, and the request fails with
// ErrBodyNotReplayable. The body streams from a pipe, 1 MiB, so nothing
// could keep a copy unasked; with a BufferBody smaller than the body the
// same holds.
func TestHostileNonReplayableBodyNeverResent(t *testing.T) {
	const size = 1 << 20
	for _, tc := range []struct {
		name   string
		status int
		header string
		buffer int64
	}{
		{"403 insufficient_scope", http.StatusForbidden, `Bearer error="insufficient_scope", scope="tools:call"`, 0},
		{"401 invalid_token", http.StatusUnauthorized, `Bearer error="invalid_token"`, 0},
		{"403 with a body longer than BufferBody", http.StatusForbidden, `Bearer error="insufficient_scope", scope="tools:call"`, 64 << 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkLeaks(t)
			w := newWorld(t)
			var mu sync.Mutex
			var received []int64
			w.mux.HandleFunc("POST /tools", func(rw http.ResponseWriter, r *http.Request) {
				n, _ := io.Copy(io.Discard, r.Body)
				mu.Lock()
				received = append(received, n)
				mu.Unlock()
				w.challenge(rw, tc.status, "%s", tc.header)
			})
			esc := newEscalator(w)
			tap := newLogTap()
			tr := w.transport(w.source(w.as.issue(true, "files:read"), stepup.WithEscalator(esc)))
			tr.BufferBody = tc.buffer
			tr.Logger = slog.New(tap)
			pr, pw := io.Pipe()
			written := make(chan error, 1)
			go func() {
				chunk := bytes.Repeat([]byte("p"), 32<<10)
				var err error
				for sent := 0; sent < size && err == nil; sent += len(chunk) {
					_, err = pw.Write(chunk)
				}
				pw.Close()
				written <- err
			}()

			_, err := w.do(&http.Client{Transport: tr}, http.MethodPost, "/tools", pr)

			var ce *stepup.ChallengeError
			require.ErrorAs(t, err, &ce)
			assert.ErrorIs(t, err, stepup.ErrBodyNotReplayable)
			assert.Equal(t, tc.status, ce.Status)
			assert.NoError(t, recv(t, written), "the body was not taken whole")
			mu.Lock()
			assert.Equal(t, []int64{size}, received, "sent once, whole")
			mu.Unlock()
			assert.Equal(t, int32(1), w.hits.Load(), "sends")
			if tc.status == http.StatusForbidden {
				assert.Equal(t, int32(1), esc.calls.Load(), "Escalator calls")
				assert.Zero(t, w.as.refreshHits.Load(), "refreshes")
			} else {
				assert.Zero(t, esc.calls.Load(), "Escalator calls")
				assert.Equal(t, int32(1), w.as.refreshHits.Load(), "refreshes")
			}
		})
	}
}
