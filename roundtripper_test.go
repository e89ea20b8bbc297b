package stepup_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"net/url"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-retryablehttp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"golang.org/x/oauth2"

	"github.com/stepup-go/stepup"
)

// secretMark is part of every token the test authorization server issues:
// no error message or log line may contain it.
const secretMark = "SECRET"

// testTimeout bounds every request of a test, so that a bug shows as a
// failure rather than a hung test binary. It is never used to wait for
// anything.
const testTimeout = 30 * time.Second

// recv receives from c, failing the test if nothing comes within
// testTimeout: a regression then shows as a failure, not a hung binary.
func recv[T any](t *testing.T, c <-chan T) T {
	t.Helper()
	select {
	case v := <-c:
		return v
	case <-time.After(testTimeout):
		t.Fatalf("nothing received within %v", testTimeout)
		panic("unreachable")
	}
}

// checkLeaks fails t if goroutines started during the test outlive it. It
// runs after every cleanup registered later, so servers are closed by then.
func checkLeaks(t *testing.T) {
	t.Helper()
	opt := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, opt) })
}

// world is an authorization server, a protected resource server and the
// client side plumbing between them.
type world struct {
	t     *testing.T
	as    *authServer
	rs    *httptest.Server
	mux   *http.ServeMux
	base  *http.Transport
	cfg   *oauth2.Config
	hits  atomic.Int32 // requests the resource server received
	plain *http.Client // for the token endpoint, through base
}

func newWorld(t *testing.T) *world {
	t.Helper()
	w := &world{t: t, as: newAuthServer(t), mux: http.NewServeMux()}
	w.rs = httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		w.hits.Add(1)
		w.mux.ServeHTTP(rw, r)
	}))
	t.Cleanup(w.rs.Close)
	w.as.resource = w.resource()
	w.base = http.DefaultTransport.(*http.Transport).Clone()
	w.base.MaxIdleConnsPerHost = 64
	t.Cleanup(w.base.CloseIdleConnections)
	w.plain = &http.Client{Transport: w.base}
	w.cfg = &oauth2.Config{
		ClientID:    testClient,
		Endpoint:    oauth2.Endpoint{AuthURL: w.as.URL + "/authorize", TokenURL: w.as.URL + "/token", AuthStyle: oauth2.AuthStyleInParams},
		RedirectURL: testRedirect,
	}
	return w
}

func (w *world) resource() string    { return w.rs.URL + "/mcp" }
func (w *world) metadataURL() string { return w.rs.URL + "/.well-known/oauth-protected-resource" }

// source returns a token source for the world's resource that refreshes at
// the world's token endpoint.
func (w *world) source(tok *oauth2.Token, opts ...stepup.TokenSourceOption) *stepup.TokenSource {
	w.t.Helper()
	ts, err := stepup.NewTokenSource(w.resource(), tok, append([]stepup.TokenSourceOption{stepup.WithOAuth2Config(w.cfg)}, opts...)...)
	require.NoError(w.t, err)
	return ts
}

// transport returns a stepup Transport for ts over the world's base
// transport.
func (w *world) transport(ts *stepup.TokenSource) *stepup.Transport {
	return &stepup.Transport{Base: w.base, Source: ts}
}

// protect serves path the way an RFC 6750 resource server does, demanding
// need.
func (w *world) protect(path string, need ...string) {
	w.mux.HandleFunc(path, func(rw http.ResponseWriter, r *http.Request) {
		g, ok := w.check(rw, r)
		if !ok {
			return
		}
		if !g.scopes.ContainsAll(need) {
			w.challenge(rw, http.StatusForbidden, `Bearer error="insufficient_scope", scope=%q, resource_metadata=%q, error_description="more scope needed"`, strings.Join(need, " "), w.metadataURL())
			return
		}
		body, _ := io.ReadAll(r.Body)
		fmt.Fprintf(rw, "ok %s %s", r.URL.Path, body)
	})
}

// check authenticates r: no token → 401 with resource_metadata (RFC 9728
// §5.1), unknown or expired token → 401 invalid_token.
func (w *world) check(rw http.ResponseWriter, r *http.Request) (*grant, bool) {
	auth := r.Header.Get("Authorization")
	if auth == "" {
		w.challenge(rw, http.StatusUnauthorized, `Bearer resource_metadata=%q, scope="files:read"`, w.metadataURL())
		return nil, false
	}
	g := w.as.lookup(strings.TrimPrefix(auth, "Bearer "))
	if g == nil || !strings.HasPrefix(auth, "Bearer ") {
		w.challenge(rw, http.StatusUnauthorized, `Bearer realm="files", error="invalid_token", error_description="The access token expired"`)
		return nil, false
	}
	return g, true
}

func (w *world) challenge(rw http.ResponseWriter, status int, format string, args ...any) {
	rw.Header().Set("WWW-Authenticate", fmt.Sprintf(format, args...))
	rw.WriteHeader(status)
	fmt.Fprintf(rw, "challenge %d", status)
}

// login runs an authorization code flow with PKCE at the world's
// authorization server for what req asks, the way an Escalator would
// after the user consented.
func (w *world) login(ctx context.Context, req *stepup.EscalationRequest) (*oauth2.Token, error) {
	cfg := *w.cfg
	cfg.Scopes = req.Scopes
	verifier := oauth2.GenerateVerifier()
	opts := []oauth2.AuthCodeOption{oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("resource", req.Resource)}
	if len(req.ACRValues) > 0 {
		opts = append(opts, oauth2.SetAuthURLParam("acr_values", strings.Join(req.ACRValues, " ")))
	}
	if req.MaxAge != stepup.NoMaxAge {
		opts = append(opts, oauth2.SetAuthURLParam("max_age", fmt.Sprint(req.MaxAge)))
	}
	if req.Claims != nil {
		opts = append(opts, oauth2.SetAuthURLParam("claims", string(req.Claims)))
	}
	areq, err := http.NewRequestWithContext(ctx, http.MethodGet, cfg.AuthCodeURL("state-1", opts...), nil)
	if err != nil {
		return nil, err
	}
	resp, err := w.base.RoundTrip(areq) // a RoundTrip does not follow the redirect
	if err != nil {
		return nil, err
	}
	resp.Body.Close()
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || loc.Query().Get("code") == "" {
		return nil, fmt.Errorf("authorization failed: %s", resp.Status)
	}
	ctx = context.WithValue(ctx, oauth2.HTTPClient, w.plain)
	return cfg.Exchange(ctx, loc.Query().Get("code"), oauth2.VerifierOption(verifier), oauth2.SetAuthURLParam("resource", req.Resource))
}

// get sends a GET for path through c. The context carries the client x/oauth2
// refreshes with, as an application would.
func (w *world) get(c *http.Client, path string) (*http.Response, error) {
	return w.do(c, http.MethodGet, path, nil)
}

func (w *world) do(c *http.Client, method, path string, body io.Reader) (*http.Response, error) {
	ctx, cancel := context.WithTimeout(w.ctx(), testTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, w.rs.URL+path, body)
	if err != nil {
		return nil, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(b))
	return resp, err
}

func (w *world) ctx() context.Context {
	return context.WithValue(context.Background(), oauth2.HTTPClient, w.plain)
}

// mustGet is get for a request expected to get a response.
func (w *world) mustGet(c *http.Client, path string) (int, string) {
	w.t.Helper()
	resp, err := w.get(c, path)
	require.NoError(w.t, err)
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// mustStop is get for a request whose challenge stepup answered and could
// not cure: it checks that the error is a *ChallengeError wrapping want and
// returns it.
func (w *world) mustStop(c *http.Client, path string, want error) *stepup.ChallengeError {
	w.t.Helper()
	resp, err := w.get(c, path)
	require.Nil(w.t, resp)
	var ce *stepup.ChallengeError
	require.ErrorAs(w.t, err, &ce)
	require.ErrorIs(w.t, err, want)
	return ce
}

// status is get for use off the test's goroutine: it reports a failed
// request as status 0 rather than stopping the test.
func (w *world) status(c *http.Client, path string) int {
	resp, err := w.get(c, path)
	if err != nil {
		w.t.Errorf("GET %s: %v", path, err)
		return 0
	}
	return resp.StatusCode
}

// escalator is an Escalator that logs in at the world's authorization
// server, counting its calls and keeping the requests it saw.
type escalator struct {
	w       *world
	calls   atomic.Int32
	mu      sync.Mutex
	reqs    []*stepup.EscalationRequest
	decline atomic.Bool
	fail    atomic.Pointer[error]
	entered chan *stepup.EscalationRequest // if set, told of each call
	gate    chan struct{}                  // if set, each call waits for it
	ctxs    []context.Context
}

func newEscalator(w *world) *escalator { return &escalator{w: w} }

func (e *escalator) Escalate(ctx context.Context, req *stepup.EscalationRequest) (*stepup.Grant, error) {
	tok, err := e.escalate(ctx, req)
	if tok == nil {
		return nil, err
	}
	return &stepup.Grant{Token: tok}, err
}

func (e *escalator) escalate(ctx context.Context, req *stepup.EscalationRequest) (*oauth2.Token, error) {
	e.calls.Add(1)
	e.mu.Lock()
	e.reqs = append(e.reqs, req)
	e.ctxs = append(e.ctxs, ctx)
	e.mu.Unlock()
	if e.entered != nil {
		e.entered <- req
	}
	if e.gate != nil {
		select {
		case <-e.gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if e.decline.Load() {
		return nil, fmt.Errorf("user closed the consent page: %w", stepup.ErrDeclined)
	}
	if err := e.fail.Load(); err != nil {
		return nil, *err
	}
	return e.w.login(ctx, req)
}

func (e *escalator) requests() []*stepup.EscalationRequest {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]*stepup.EscalationRequest(nil), e.reqs...)
}

// tokenEscalator adapts an Escalator body that returns a bare token.
func tokenEscalator(f func(context.Context, *stepup.EscalationRequest) (*oauth2.Token, error)) stepup.EscalatorFunc {
	return func(ctx context.Context, req *stepup.EscalationRequest) (*stepup.Grant, error) {
		tok, err := f(ctx, req)
		if tok == nil {
			return nil, err
		}
		return &stepup.Grant{Token: tok}, err
	}
}

// logTap is a log/slog handler that keeps the text of every record and can
// tell a test about records as they happen.
type logTap struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	text    slog.Handler
	on      func(slog.Record)
	waiters map[string][]chan struct{}
}

func newLogTap() *logTap {
	l := &logTap{}
	l.text = slog.NewTextHandler(&l.buf, &slog.HandlerOptions{Level: slog.LevelDebug})
	return l
}

func (l *logTap) Enabled(context.Context, slog.Level) bool { return true }
func (l *logTap) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *logTap) WithGroup(string) slog.Handler            { return l }
func (l *logTap) Handle(ctx context.Context, r slog.Record) error {
	if l.on != nil {
		l.on(r)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	err := l.text.Handle(ctx, r)
	for _, ch := range l.waiters[r.Message] {
		close(ch)
	}
	delete(l.waiters, r.Message)
	return err
}

// waitFor returns a channel closed once a record with message has been
// written, for an event a goroutine of the library's own logs after the
// request it served has returned.
func (l *logTap) waitFor(message string) <-chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.waiters == nil {
		l.waiters = map[string][]chan struct{}{}
	}
	ch := make(chan struct{})
	l.waiters[message] = append(l.waiters[message], ch)
	return ch
}

func (l *logTap) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// The seed scenario: a token with a refresh token meets 403
// insufficient_scope. A refresh cannot widen scope, so none may happen; the
// Escalator is asked for the union of the scopes, and the replay succeeds.
func TestSeedInsufficientScopeEscalatesWithoutRefresh(t *testing.T) {
	checkLeaks(t)
	w := newWorld(t)
	w.protect("/files/write", "files:read", "files:write")
	tok := w.as.issue(true, "files:read")
	esc := newEscalator(w)
	ts := w.source(tok, stepup.WithScopes("files:read"), stepup.WithEscalator(esc))
	c := &http.Client{Transport: w.transport(ts)}

	status, body := w.mustGet(c, "/files/write")

	assert.Equal(t, http.StatusOK, status)
	assert.Equal(t, "ok /files/write ", body)
	assert.Zero(t, w.as.refreshHits.Load(), "a refresh reached the token endpoint") // RFC 6749 §6,
	require.Equal(t, int32(1), esc.calls.Load())                                    // RFC 6750 §3.1
	er := esc.requests()[0]
	assert.Equal(t, stepup.ReasonInsufficientScope, er.Reason)
	assert.Equal(t, stepup.Scopes{"files:read", "files:write"}, er.Scopes) // MCP authorization, "Step-Up Authorization Flow"
	assert.Equal(t, stepup.Scopes{"files:read", "files:write"}, er.ChallengedScopes)
	assert.Equal(t, w.metadataURL(), er.ResourceMetadata)
	assert.Equal(t, w.resource(), er.Resource)
	assert.Equal(t, tok.AccessToken, er.RejectedToken.AccessToken)
	assert.Empty(t, er.Request.Header.Get("Authorization"))
	assert.Nil(t, er.Request.Body)
	assert.Equal(t, "more scope needed", er.Challenge.ErrorDescription)
	q := w.as.authorizeQueries()
	require.Len(t, q, 1)
	assert.Equal(t, "files:read files:write", q[0].Get("scope"))
	assert.Equal(t, w.resource(), q[0].Get("resource")) // RFC 8707 §2
	_, granted := ts.Scopes()
	assert.True(t, granted.Equal(stepup.Scopes{"files:write", "files:read"}))
	assert.Equal(t, int32(2), w.hits.Load())
}

// The union keeps what the user was granted earlier, not only what this
// challenge names (MCP authorization, "Step-Up Authorization Flow", MCP 2026-07-28 sends only the missing scope).
func TestEscalationScopesAreRequestedGrantedAndChallenged(t *testing.T) {
	w := newWorld(t)
	w.protect("/admin", "admin")
	tok := w.as.issue(true, "files:read", "profile")
	esc := newEscalator(w)
	ts := w.source(tok, stepup.WithScopes("openid", "files:read"), stepup.WithEscalator(esc))
	c := &http.Client{Transport: w.transport(ts)}

	status, _ := w.mustGet(c, "/admin")

	assert.Equal(t, http.StatusOK, status)
	require.Equal(t, int32(1), esc.calls.Load())
	assert.Equal(t, stepup.Scopes{"openid", "files:read", "profile", "admin"}, esc.requests()[0].Scopes)
	assert.Equal(t, stepup.Scopes{"admin"}, esc.requests()[0].ChallengedScopes)
}

// An expired token drawn by 100 concurrent requests is refreshed once: a
// rotating refresh token must never be redeemed twice (OAuth 2.1 §4.3.1).
func TestInvalidTokenConcurrentRequestsRefreshOnce(t *testing.T) {
	checkLeaks(t)
	const n = 100
	w := newWorld(t)
	var rejected atomic.Int32
	gate := make(chan struct{})
	w.as.setGate(gate) // the refresh finishes only after all n were rejected
	w.mux.HandleFunc("/files", func(rw http.ResponseWriter, r *http.Request) {
		if _, ok := w.check(rw, r); !ok {
			if rejected.Add(1) == n {
				close(gate)
			}
			return
		}
		fmt.Fprint(rw, "ok")
	})
	tok := w.as.issue(true, "files:read")
	w.as.revoke(tok) // the resource server no longer takes it; the client cannot know
	esc := newEscalator(w)
	c := &http.Client{Transport: w.transport(w.source(tok, stepup.WithEscalator(esc)))}

	statuses := make(chan int, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			resp, err := w.get(c, "/files")
			if !assert.NoError(t, err) {
				statuses <- 0
				return
			}
			statuses <- resp.StatusCode
		}()
	}
	close(start)
	wg.Wait()
	close(statuses)

	for s := range statuses {
		assert.Equal(t, http.StatusOK, s)
	}
	assert.Equal(t, int32(1), w.as.refreshHits.Load(), "token endpoint hits") // OAuth 2.1 §4.3.1
	assert.Zero(t, w.as.reuses.Load())
	assert.Zero(t, esc.calls.Load())
	f := w.as.refreshForms()[0]
	assert.Equal(t, tok.RefreshToken, f.Get("refresh_token"))
	assert.Equal(t, w.resource(), f.Get("resource")) // RFC 8707 §2.2
	assert.False(t, f.Has("scope"), "a refresh must not send scope")
}

// 1,000 concurrent requests drawing the same 403 share one Escalator call
// and all succeed.
func TestThousandConcurrentRequestsOneEscalation(t *testing.T) {
	checkLeaks(t)
	const n = 1000
	w := newWorld(t)
	w.base.MaxConnsPerHost = 64
	var forbidden atomic.Int32
	all := make(chan struct{})
	w.mux.HandleFunc("/write", func(rw http.ResponseWriter, r *http.Request) {
		g, ok := w.check(rw, r)
		if !ok {
			return
		}
		if !g.scopes.Contains("files:write") {
			w.challenge(rw, http.StatusForbidden, `Bearer error="insufficient_scope", scope="files:write"`)
			if forbidden.Add(1) == n {
				close(all)
			}
			return
		}
		fmt.Fprint(rw, "ok")
	})
	esc := newEscalator(w)
	esc.gate = all // the escalation completes only after every request drew the 403
	c := &http.Client{Transport: w.transport(w.source(w.as.issue(true, "files:read"), stepup.WithEscalator(esc)))}

	var ok atomic.Int32
	start := make(chan struct{})
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			resp, err := w.get(c, "/write")
			if assert.NoError(t, err) && resp.StatusCode == http.StatusOK {
				ok.Add(1)
			}
		}()
	}
	close(start)
	wg.Wait()

	assert.Equal(t, int32(1), esc.calls.Load(), "Escalator calls")
	assert.Equal(t, int32(n), ok.Load(), "successful requests")
	assert.Zero(t, w.as.refreshHits.Load())
}

// The same 403 right after its escalation stops the request: escalating
// again cannot help (RFC 9110 §15.5.2; MCP authorization, "Step-Up
// Authorization Flow": retry no more than a few times). The request fails
// with a typed error naming the challenge.
func TestSame403AfterEscalationStops(t *testing.T) {
	w := newWorld(t)
	w.protect("/admin", "admin")
	w.as.setGrantFor(func(stepup.Scopes) stepup.Scopes { return stepup.Scopes{"files:read"} }) // never grants admin
	esc := newEscalator(w)
	c := &http.Client{Transport: w.transport(w.source(w.as.issue(true, "files:read"), stepup.WithEscalator(esc)))}

	ce := w.mustStop(c, "/admin", stepup.ErrExhausted)

	assert.Equal(t, http.StatusForbidden, ce.Status)
	assert.Equal(t, stepup.ErrorInsufficientScope, ce.Challenge.Error)
	assert.Equal(t, stepup.Scopes{"admin"}, ce.Challenge.Scope)
	assert.Equal(t, stepup.ReasonInsufficientScope, ce.Reason)
	assert.Equal(t, int32(1), esc.calls.Load())
	assert.Equal(t, int32(2), w.hits.Load())
	assert.Zero(t, w.as.refreshHits.Load())
}

// A server answering every token with 403 insufficient_scope for the same
// scope gets at most two authorizations from a client that sends many
// requests, the first one included (the MCP conformance suite's
// auth/scope-retry-limit allows three): the challenge is exhausted across
// requests, and every request fails with the same typed error.
func TestAlways403ManyRequestsAtMostTwoEscalations(t *testing.T) {
	w := newWorld(t)
	w.mux.HandleFunc("/mcp", func(rw http.ResponseWriter, r *http.Request) {
		if _, ok := w.check(rw, r); ok {
			w.challenge(rw, http.StatusForbidden, `Bearer error="insufficient_scope", scope="mcp:admin", resource_metadata=%q`, w.metadataURL())
		}
	})
	esc := newEscalator(w)
	c := &http.Client{Transport: w.transport(w.source(nil, stepup.WithEscalator(esc)))}

	for range 20 {
		ce := w.mustStop(c, "/mcp", stepup.ErrExhausted)
		assert.Equal(t, http.StatusForbidden, ce.Status)
	}

	assert.Equal(t, int32(2), esc.calls.Load(), "authorizations in the whole run")
	reqs := esc.requests()
	assert.Equal(t, stepup.ReasonAuthorizationRequired, reqs[0].Reason)
	assert.Nil(t, reqs[0].RejectedToken)
	assert.Equal(t, stepup.Scopes{"files:read"}, reqs[0].Scopes)
	assert.Equal(t, stepup.ReasonInsufficientScope, reqs[1].Reason)
	assert.Equal(t, stepup.Scopes{"files:read", "mcp:admin"}, reqs[1].Scopes)
}

// An exhausted challenge may be escalated again once the exhaustion lapses
// (ExhaustedTTL) or once the granted scopes change.
func TestExhaustedChallengeLapsesWithTTLOrNewGrant(t *testing.T) {
	w := newWorld(t)
	w.protect("/admin", "admin")
	w.protect("/write", "files:write")
	w.as.setGrantFor(func(s stepup.Scopes) stepup.Scopes {
		out := stepup.Scopes{}
		for _, v := range s {
			if v != "admin" {
				out = append(out, v)
			}
		}
		return out
	})
	esc := newEscalator(w)
	ts := w.source(w.as.issue(true, "files:read"), stepup.WithEscalator(esc))
	tr := w.transport(ts)
	c := &http.Client{Transport: tr}

	w.mustStop(c, "/admin", stepup.ErrExhausted)
	w.mustStop(c, "/admin", stepup.ErrExhausted)
	require.Equal(t, int32(1), esc.calls.Load(), "exhausted: not escalated again")

	status, _ := w.mustGet(c, "/write") // a grant that changes the granted scopes
	require.Equal(t, http.StatusOK, status)
	require.Equal(t, int32(2), esc.calls.Load())

	w.mustStop(c, "/admin", stepup.ErrExhausted)
	assert.Equal(t, int32(3), esc.calls.Load(), "granted scopes changed: escalated once more")
	w.mustStop(c, "/admin", stepup.ErrExhausted)
	assert.Equal(t, int32(3), esc.calls.Load())

	ts.SetExhaustedTTL(time.Nanosecond) // every entry has lapsed by the next request
	w.mustStop(c, "/admin", stepup.ErrExhausted)
	assert.Equal(t, int32(4), esc.calls.Load(), "lapsed: escalated once more")
}

// A server naming a new scope in every 403 cannot make one request escalate
// more than MaxReplays times.
func TestEndless403WithChangingScopesIsBounded(t *testing.T) {
	w := newWorld(t)
	var n atomic.Int32
	w.mux.HandleFunc("/x", func(rw http.ResponseWriter, r *http.Request) {
		if _, ok := w.check(rw, r); ok {
			w.challenge(rw, http.StatusForbidden, `Bearer error="insufficient_scope", scope="s%d"`, n.Add(1))
		}
	})
	esc := newEscalator(w)
	c := &http.Client{Transport: w.transport(w.source(w.as.issue(true, "a"), stepup.WithEscalator(esc)))}

	ce := w.mustStop(c, "/x", stepup.ErrReplayLimit)

	assert.Equal(t, http.StatusForbidden, ce.Status)
	assert.Equal(t, int32(stepup.DefaultMaxReplays), esc.calls.Load())
	assert.Equal(t, int32(stepup.DefaultMaxReplays+1), w.hits.Load())
}

// A server alternating 401 invalid_token and 403 insufficient_scope gets at
// most one refresh and one escalation per request.
func TestPingPong401And403IsBounded(t *testing.T) {
	w := newWorld(t)
	var n atomic.Int32
	w.mux.HandleFunc("/x", func(rw http.ResponseWriter, r *http.Request) {
		if n.Add(1)%2 == 1 {
			w.challenge(rw, http.StatusUnauthorized, `Bearer error="invalid_token"`)
		} else {
			w.challenge(rw, http.StatusForbidden, `Bearer error="insufficient_scope", scope="more"`)
		}
	})
	esc := newEscalator(w)
	tr := w.transport(w.source(w.as.issue(true, "a"), stepup.WithEscalator(esc)))
	tr.MaxReplays = 10 // the per-challenge guard, not the replay cap, must stop it
	c := &http.Client{Transport: tr}

	ce := w.mustStop(c, "/x", stepup.ErrExhausted)

	assert.Equal(t, http.StatusUnauthorized, ce.Status)
	assert.Equal(t, int32(1), w.as.refreshHits.Load())
	assert.Equal(t, int32(1), esc.calls.Load())
	assert.Equal(t, int32(3), w.hits.Load())
}

// A panic in an escalation's flight outside the Escalator, here in the
// Logger's handler, ends the request with an *ChallengeError too, which
// CheckRetry knows not to retry, rather than with an untyped error.
func TestEscalationFlightPanicIsChallengeError(t *testing.T) {
	checkLeaks(t)
	w := newWorld(t)
	w.protect("/write", "files:write")
	tap := newLogTap()
	tap.on = func(r slog.Record) {
		if r.Message == "stepup: escalation start" {
			panic("log sink full")
		}
	}
	esc := newEscalator(w)
	tr := w.transport(w.source(w.as.issue(true, "files:read"), stepup.WithEscalator(esc)))
	tr.Logger = slog.New(tap)

	_, err := w.get(&http.Client{Transport: tr}, "/write")

	var ee *stepup.ChallengeError
	require.ErrorAs(t, err, &ee)
	assert.NotErrorIs(t, ee, stepup.ErrDeclined)
	assert.Equal(t, stepup.ReasonInsufficientScope, ee.Reason)
	assert.Equal(t, http.StatusForbidden, ee.Status)
	assert.Contains(t, err.Error(), "log sink full")
	assert.Zero(t, esc.calls.Load())
	assert.Equal(t, int32(1), w.hits.Load(), "sends")
}

// A request that gives up while the user is still on the consent page (its
// context ends: an http.Client Timeout, say) fails with its context's error
// at once, but the escalation goes on: the consent given later is
// installed, and the next request uses it without asking again.
func TestEscalationOutlivesItsCaller(t *testing.T) {
	checkLeaks(t)
	w := newWorld(t)
	w.protect("/write", "files:write")
	esc := newEscalator(w)
	esc.entered = make(chan *stepup.EscalationRequest, 1)
	esc.gate = make(chan struct{})
	ts := w.source(w.as.issue(true, "files:read"), stepup.WithEscalator(esc))
	c := &http.Client{Transport: w.transport(ts)}

	ctx, cancel := context.WithCancel(w.ctx())
	errc := make(chan error, 1)
	go func() {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, w.rs.URL+"/write", nil)
		resp, err := c.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		errc <- err
	}()
	recv(t, esc.entered)
	cancel()
	assert.ErrorIs(t, recv(t, errc), context.Canceled)

	esc.mu.Lock()
	escCtx := esc.ctxs[0]
	esc.mu.Unlock()
	assert.NoError(t, escCtx.Err(), "the escalation goes on without its caller")
	deadline, ok := escCtx.Deadline()
	require.True(t, ok, "an escalation is bounded")
	assert.WithinDuration(t, time.Now().Add(stepup.DefaultEscalationTimeout), deadline, time.Minute)

	installed := make(chan struct{})
	go func() {
		defer close(installed)
		for _, granted := ts.Scopes(); !granted.Contains("files:write"); _, granted = ts.Scopes() {
			runtime.Gosched()
		}
	}()
	close(esc.gate) // the user consents, late
	recv(t, installed)

	status, _ := w.mustGet(c, "/write")
	assert.Equal(t, http.StatusOK, status)
	assert.Equal(t, int32(1), esc.calls.Load(), "the late consent was kept: no second prompt")
}

// EscalationTimeout bounds an escalation: its context ends, the request
// waiting for it fails with a ChallengeError saying so, nothing is
// remembered as declined, and the next request starts afresh.
func TestEscalationTimeout(t *testing.T) {
	checkLeaks(t)
	w := newWorld(t)
	w.protect("/write", "files:write")
	esc := newEscalator(w)
	esc.entered = make(chan *stepup.EscalationRequest, 2)
	esc.gate = make(chan struct{}) // never opened: the user never answers
	ts := w.source(w.as.issue(true, "files:read"), stepup.WithEscalator(esc), stepup.WithEscalationTimeout(time.Millisecond))
	tr := w.transport(ts)
	c := &http.Client{Transport: tr}

	_, err := w.get(c, "/write")
	var ce *stepup.ChallengeError
	require.ErrorAs(t, err, &ce, "the request waited for the escalation, which timed out")
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	recv(t, esc.entered)

	close(esc.gate)
	ts.SetEscalationTimeout(0) // the default: time enough for the login
	status, _ := w.mustGet(c, "/write")
	assert.Equal(t, http.StatusOK, status)
	assert.Equal(t, int32(2), esc.calls.Load(), "a timed-out escalation is not remembered as declined")
}

// When the request that started an escalation is cancelled, a request
// waiting for the same escalation takes it over: the Escalator goes on, is
// called once, and the waiter succeeds.
func TestCancelledLeaderHandsOverToWaiter(t *testing.T) {
	checkLeaks(t)
	w := newWorld(t)
	w.protect("/write", "files:write")
	esc := newEscalator(w)
	esc.entered = make(chan *stepup.EscalationRequest, 1)
	esc.gate = make(chan struct{})
	joined := make(chan struct{}, 1)
	tap := newLogTap()
	tap.on = func(r slog.Record) {
		if r.Message == "stepup: waiting for an escalation in progress" {
			joined <- struct{}{}
		}
	}
	tr := w.transport(w.source(w.as.issue(true, "files:read"), stepup.WithEscalator(esc)))
	tr.Logger = slog.New(tap)
	c := &http.Client{Transport: tr}

	leaderCtx, cancelLeader := context.WithCancel(w.ctx())
	leader := make(chan error, 1)
	go func() {
		req, _ := http.NewRequestWithContext(leaderCtx, http.MethodGet, w.rs.URL+"/write", nil)
		resp, err := c.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		leader <- err
	}()
	recv(t, esc.entered)
	waiter := make(chan int, 1)
	go func() {
		waiter <- w.status(c, "/write")
	}()
	recv(t, joined)
	cancelLeader()
	assert.ErrorIs(t, recv(t, leader), context.Canceled)
	esc.mu.Lock()
	escCtx := esc.ctxs[0]
	esc.mu.Unlock()
	assert.NoError(t, escCtx.Err(), "the escalation must go on for the waiter")
	close(esc.gate)

	assert.Equal(t, http.StatusOK, recv(t, waiter))
	assert.Equal(t, int32(1), esc.calls.Load())
}

// A redirect to another origin goes without the token (RFC 6750 §5.3), and that
// origin's challenges are not acted on.
func TestCrossOriginRedirectCarriesNoToken(t *testing.T) {
	checkLeaks(t)
	w := newWorld(t)
	var foreignAuth atomic.Pointer[string]
	foreign := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		a := r.Header.Get("Authorization")
		foreignAuth.Store(&a)
		w.challenge(rw, http.StatusUnauthorized, `Bearer error="invalid_token"`)
	}))
	t.Cleanup(foreign.Close)
	var localAuth atomic.Pointer[string]
	w.mux.HandleFunc("/redirect", func(rw http.ResponseWriter, r *http.Request) {
		a := r.Header.Get("Authorization")
		localAuth.Store(&a)
		http.Redirect(rw, r, foreign.URL+"/elsewhere", http.StatusTemporaryRedirect)
	})
	tok := w.as.issue(true, "files:read")
	esc := newEscalator(w)
	tap := newLogTap()
	tr := w.transport(w.source(tok, stepup.WithEscalator(esc)))
	tr.Logger = slog.New(tap)
	c := &http.Client{Transport: tr}

	status, body := w.mustGet(c, "/redirect")

	require.NotNil(t, localAuth.Load())
	assert.Equal(t, "Bearer "+tok.AccessToken, *localAuth.Load())
	require.NotNil(t, foreignAuth.Load())
	assert.Empty(t, *foreignAuth.Load(), "the token went to another origin")
	assert.Equal(t, http.StatusUnauthorized, status)
	assert.Equal(t, "challenge 401", body)
	assert.Zero(t, w.as.refreshHits.Load())
	assert.Zero(t, esc.calls.Load())
	assert.Contains(t, tap.String(), "another origin")
}

// Challenges that are malformed, ambiguous, over a limit or not ours are
// never acted on, and their response comes back untouched.
func TestChallengesNotActedOn(t *testing.T) {
	claims := base64.StdEncoding.EncodeToString([]byte(`{"access_token":{"acrs":{"essential":true,"value":"cp1"}}}`))
	for _, tc := range []struct {
		name   string
		status int
		header []string
		nonce  []string
	}{
		{"duplicate parameter", 403, []string{`Bearer error="insufficient_scope", scope="a", scope="b"`}, nil},                //
		{"duplicate parameter any case", 403, []string{`Bearer error="insufficient_scope", Scope="a", scope="b"`}, nil},       //
		{"unterminated quote", 403, []string{`Bearer error="insufficient_scope, scope="a"`}, nil},                             //
		{"trailing garbage", 401, []string{`Bearer realm="x" junk`}, nil},                                                     //
		{"scope outside its character set", 403, []string{"Bearer error=\"insufficient_scope\", scope=\"caf\xc3\xa9\""}, nil}, // RFC 6750 §3
		{"unquoted scope with colon", 403, []string{`Bearer scope=files:write, error=insufficient_scope`}, nil},               //
		{"two Bearer challenges", 403, []string{`Bearer error="insufficient_scope", scope="a"`, `Bearer error="insufficient_scope", scope="b"`}, nil},
		{"header over the size limit", 403, []string{`Bearer error="insufficient_scope", scope="a", realm="` + strings.Repeat("x", stepup.MaxChallengeHeaderBytes) + `"`}, nil},
		{"invalid_request", 400, []string{`Bearer error="invalid_request"`}, nil},        // RFC 6750 §3.1
		{"invalid_request on 401", 401, []string{`Bearer error="invalid_request"`}, nil}, // RFC 6750 §3.1
		{"403 without error or scope", 403, []string{`Bearer realm="files"`}, nil},       // RFC 9110 §15.5.4
		{"403 Basic only", 403, []string{`Basic realm="files"`}, nil},
		{"unknown error code", 403, []string{`Bearer error="something_else", scope="a"`}, nil},
		{"insufficient_claims without claims", 401, []string{`Bearer error="insufficient_claims"`}, nil},
		{"claims that are not base64 JSON", 401, []string{`Bearer error="insufficient_claims", claims="bm90IGpzb24="`}, nil},
		{"use_dpop_nonce without a hook", 401, []string{`DPoP error="use_dpop_nonce"`}, []string{"n-1"}},
		{"use_dpop_nonce in a Bearer challenge", 401, []string{`Bearer error="use_dpop_nonce"`}, []string{"n-1"}},
		{"Negotiate only", 401, []string{`Negotiate YIIBhwYGKwYBBQUCoII=`}, nil},
		{"claims with valid JSON but 405", 405, []string{`Bearer error="insufficient_claims", claims="` + claims + `"`}, nil},
		{"403 without WWW-Authenticate", 403, nil, nil}, // RFC 9110 §15.5.4
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t)
			w.mux.HandleFunc("/x", func(rw http.ResponseWriter, r *http.Request) {
				rw.Header()["Www-Authenticate"] = tc.header
				if tc.nonce != nil {
					rw.Header()["Dpop-Nonce"] = tc.nonce
				}
				rw.WriteHeader(tc.status)
				fmt.Fprint(rw, "original body")
			})
			esc := newEscalator(w)
			tap := newLogTap()
			tr := w.transport(w.source(w.as.issue(true, "files:read"), stepup.WithEscalator(esc)))
			tr.Logger = slog.New(tap)
			c := &http.Client{Transport: tr}

			status, body := w.mustGet(c, "/x")

			assert.Equal(t, tc.status, status)
			assert.Equal(t, "original body", body)
			assert.Equal(t, int32(1), w.hits.Load(), "the request was replayed")
			assert.Zero(t, esc.calls.Load())
			assert.Zero(t, w.as.refreshHits.Load())
			if (tc.status == 401 || tc.status == 403) && tc.header != nil {
				assert.Contains(t, tap.String(), "challenge ignored")
			}
		})
	}
}

// A POST body is replayed byte for byte, through GetBody or, when the body
// has none, through BufferBody.
func TestPostBodyReplaysByteIdentical(t *testing.T) {
	payload := bytes.Repeat([]byte(`{"jsonrpc":"2.0","method":"tools/call"}`), 100)
	for _, tc := range []struct {
		name   string
		body   func() io.Reader
		buffer int64
	}{
		{"GetBody", func() io.Reader { return bytes.NewReader(payload) }, 0},
		{"BufferBody", func() io.Reader { return io.MultiReader(bytes.NewReader(payload)) }, int64(len(payload))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t)
			var mu sync.Mutex
			var bodies [][]byte
			w.mux.HandleFunc("POST /tools", func(rw http.ResponseWriter, r *http.Request) {
				b, _ := io.ReadAll(r.Body)
				mu.Lock()
				bodies = append(bodies, b)
				mu.Unlock()
				g, ok := w.check(rw, r)
				if !ok {
					return
				}
				if !g.scopes.Contains("tools:call") {
					w.challenge(rw, http.StatusForbidden, `Bearer error="insufficient_scope", scope="tools:call"`)
					return
				}
				fmt.Fprint(rw, "called")
			})
			esc := newEscalator(w)
			tr := w.transport(w.source(w.as.issue(true, "files:read"), stepup.WithEscalator(esc)))
			tr.BufferBody = tc.buffer
			c := &http.Client{Transport: tr}

			resp, err := w.do(c, http.MethodPost, "/tools", tc.body())

			require.NoError(t, err)
			assert.Equal(t, http.StatusOK, resp.StatusCode)
			require.Len(t, bodies, 2)
			assert.Equal(t, payload, bodies[0])
			assert.Equal(t, payload, bodies[1], "the replayed body differs")
		})
	}
}

// Before a replay, the challenge's body is read to its end when it declares
// a length of at most 64 KiB, so that the replay goes out on the same
// connection; a body of unknown or greater length is closed unread, and the
// replay takes a new connection (RoundTrip's doc).
func TestChallengeBodyDrainedOnlyWhenShort(t *testing.T) {
	for _, tc := range []struct {
		name      string
		size      int
		declared  bool // the 403 declares its length; else it is chunked
		wantDrain bool
	}{
		{"declared 2 KiB", 2 << 10, true, true},
		{"declared 64 KiB", 64 << 10, true, true},
		{"declared 64 KiB + 1", 64<<10 + 1, true, false},
		{"unknown length, 2 KiB", 2 << 10, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkLeaks(t)
			w := newWorld(t)
			w.mux.HandleFunc("/x", func(rw http.ResponseWriter, r *http.Request) {
				g, ok := w.check(rw, r)
				if !ok {
					return
				}
				if g.scopes.Contains("x") {
					fmt.Fprint(rw, "ok")
					return
				}
				rw.Header().Set("WWW-Authenticate", `Bearer error="insufficient_scope", scope="x"`)
				if tc.declared {
					rw.Header().Set("Content-Length", strconv.Itoa(tc.size))
				}
				rw.WriteHeader(http.StatusForbidden)
				if !tc.declared {
					rw.(http.Flusher).Flush() // the headers go before the body: chunked
				}
				_, _ = rw.Write(bytes.Repeat([]byte("e"), tc.size))
			})
			counter := &hostileBodyCounter{base: w.base}
			tr := &stepup.Transport{Base: counter, Source: w.source(w.as.issue(true, "files:read"), stepup.WithEscalator(newEscalator(w)))}
			var mu sync.Mutex
			var reused []bool // per send to the resource server
			trace := &httptrace.ClientTrace{GotConn: func(info httptrace.GotConnInfo) {
				if info.Conn.RemoteAddr().String() == w.rs.Listener.Addr().String() {
					mu.Lock()
					reused = append(reused, info.Reused)
					mu.Unlock()
				}
			}}
			ctx, cancel := context.WithTimeout(httptrace.WithClientTrace(w.ctx(), trace), testTimeout)
			defer cancel()
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, w.rs.URL+"/x", nil)
			require.NoError(t, err)

			resp, err := tr.RoundTrip(req)

			require.NoError(t, err)
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			assert.Equal(t, "ok", string(b))
			bodies := counter.responses()
			require.Len(t, bodies, 2, "sends")
			assert.True(t, bodies[0].closed.Load(), "the 403 was not closed")
			var wantRead int64
			if tc.wantDrain {
				wantRead = int64(tc.size)
			}
			assert.Equal(t, wantRead, bodies[0].read.Load(), "bytes of the 403 read by stepup")
			mu.Lock()
			defer mu.Unlock()
			assert.Equal(t, []bool{false, tc.wantDrain}, reused, "connections reused by the two sends")
		})
	}
}

// A request whose body cannot be replayed (no GetBody, BufferBody too
// small) is never sent twice, yet its challenge is remedied: the request
// fails with ErrBodyNotReplayable, and the caller's own retry succeeds
// instead of drawing the same challenge again.
func TestNonReplayableBodyRemediedNotResent(t *testing.T) {
	payload := strings.Repeat("x", 4096)
	for _, tc := range []struct {
		name   string
		buffer int64
	}{
		{"no buffering", 0},
		{"body longer than BufferBody", 100},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t)
			var mu sync.Mutex
			var bodies []string
			w.mux.HandleFunc("POST /tools", func(rw http.ResponseWriter, r *http.Request) {
				b, _ := io.ReadAll(r.Body)
				mu.Lock()
				bodies = append(bodies, string(b))
				mu.Unlock()
				if g, ok := w.check(rw, r); ok && !g.scopes.Contains("tools:call") {
					w.challenge(rw, http.StatusForbidden, `Bearer error="insufficient_scope", scope="tools:call"`)
				}
			})
			esc := newEscalator(w)
			tr := w.transport(w.source(w.as.issue(true, "files:read"), stepup.WithEscalator(esc)))
			tr.BufferBody = tc.buffer
			c := &http.Client{Transport: tr}

			_, err := w.do(c, http.MethodPost, "/tools", io.NopCloser(strings.NewReader(payload)))
			var ce *stepup.ChallengeError
			require.ErrorAs(t, err, &ce)
			assert.ErrorIs(t, err, stepup.ErrBodyNotReplayable)
			assert.Equal(t, http.StatusForbidden, ce.Status)
			assert.Equal(t, []string{payload}, bodies, "sent once, whole")
			assert.Equal(t, int32(1), esc.calls.Load(), "the authorization was obtained all the same")

			resp, err := w.do(c, http.MethodPost, "/tools", io.NopCloser(strings.NewReader(payload)))
			require.NoError(t, err)
			assert.Equal(t, http.StatusOK, resp.StatusCode, "the caller's retry goes through")
			assert.Equal(t, int32(1), esc.calls.Load())
			assert.Equal(t, []string{payload, payload}, bodies)
		})
	}
}

// RFC 9470: insufficient_user_authentication reaches the Escalator with
// acr_values in order and max_age, and never causes a refresh, which cannot
// change the authentication event (RFC 9470 §4, RFC 9470 §6.1).
func TestStepUpAuthenticationGoesToEscalatorNeverRefresh(t *testing.T) {
	w := newWorld(t)
	w.mux.HandleFunc("/pay", func(rw http.ResponseWriter, r *http.Request) {
		g, ok := w.check(rw, r)
		if !ok {
			return
		}
		if g.acr != "urn:mfa" {
			w.challenge(rw, http.StatusUnauthorized, `Bearer error="insufficient_user_authentication", error_description="A different authentication level is required", acr_values="urn:mfa urn:pwd", max_age="0", scope="payments"`)
			return
		}
		fmt.Fprint(rw, "paid")
	})
	esc := newEscalator(w)
	c := &http.Client{Transport: w.transport(w.source(w.as.issue(true, "files:read"), stepup.WithEscalator(esc)))}

	status, body := w.mustGet(c, "/pay")

	assert.Equal(t, http.StatusOK, status)
	assert.Equal(t, "paid", body)
	assert.Zero(t, w.as.refreshHits.Load(), "a refresh cannot cure insufficient_user_authentication")
	require.Equal(t, int32(1), esc.calls.Load())
	er := esc.requests()[0]
	assert.Equal(t, stepup.ReasonUserAuthentication, er.Reason)
	assert.Equal(t, []string{"urn:mfa", "urn:pwd"}, er.ACRValues)
	assert.Equal(t, 0, er.MaxAge)
	assert.Equal(t, stepup.Scopes{"files:read", "payments"}, er.Scopes) // RFC 9470 §3
	q := w.as.authorizeQueries()[0]
	assert.Equal(t, "urn:mfa urn:pwd", q.Get("acr_values"))
	assert.Equal(t, "0", q.Get("max_age"))
}

// A claims challenge reaches the Escalator with the claims decoded
// (Entra claims challenge).
func TestInsufficientClaimsGoesToEscalatorWithDecodedClaims(t *testing.T) {
	const claims = `{"access_token":{"acrs":{"essential":true,"value":"cp1"}}}`
	w := newWorld(t)
	w.mux.HandleFunc("/mail", func(rw http.ResponseWriter, r *http.Request) {
		g, ok := w.check(rw, r)
		if !ok {
			return
		}
		if g.claims != claims {
			w.challenge(rw, http.StatusUnauthorized, `Bearer realm="", authorization_uri="https://login.microsoftonline.com/common/oauth2/authorize", error="insufficient_claims", claims=%q`,
				base64.StdEncoding.EncodeToString([]byte(claims)))
			return
		}
		fmt.Fprint(rw, "mail")
	})
	esc := newEscalator(w)
	c := &http.Client{Transport: w.transport(w.source(w.as.issue(true, "mail.read"), stepup.WithEscalator(esc)))}

	status, _ := w.mustGet(c, "/mail")

	assert.Equal(t, http.StatusOK, status)
	require.Equal(t, int32(1), esc.calls.Load())
	assert.Equal(t, stepup.ReasonClaims, esc.requests()[0].Reason)
	assert.JSONEq(t, claims, string(esc.requests()[0].Claims))
	assert.Zero(t, w.as.refreshHits.Load())
}

// dpopSigner stands for the RoundTripper that signs DPoP proofs: it puts the
// last nonce it was given into each proof.
type dpopSigner struct {
	base  http.RoundTripper
	mu    sync.Mutex
	nonce string
	calls int
}

func (d *dpopSigner) setNonce(req *http.Request, nonce string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.nonce = nonce
	d.calls++
	return nil
}

func (d *dpopSigner) RoundTrip(req *http.Request) (*http.Response, error) {
	d.mu.Lock()
	nonce := d.nonce
	d.mu.Unlock()
	r2 := req.Clone(req.Context())
	r2.Header.Set("DPoP", "proof;nonce="+nonce)
	return d.base.RoundTrip(r2)
}

// use_dpop_nonce hands the nonce to the DPoP hook and replays once (RFC 9449
// §9); a nonce outside 1*NQCHAR is refused (RFC 9449 §8.1).
func TestDPoPNonce(t *testing.T) {
	for _, tc := range []struct {
		name        string
		nonces      []string
		wantStatus  int
		wantHookHit int
	}{
		{"valid nonce", []string{"eyJ7S_zG.eyJH0-Z.HX4w-7v"}, http.StatusOK, 1},
		{"nonce with a space", []string{"n 1"}, http.StatusUnauthorized, 0},
		{"nonce with obs-text", []string{"n\xc3\xa9"}, http.StatusUnauthorized, 0},
		{"nonce with a quote", []string{`n"1`}, http.StatusUnauthorized, 0},
		{"two nonce headers", []string{"n-1", "n-2"}, http.StatusUnauthorized, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t)
			w.mux.HandleFunc("/x", func(rw http.ResponseWriter, r *http.Request) {
				if r.Header.Get("DPoP") != "proof;nonce="+tc.nonces[0] {
					rw.Header()["Dpop-Nonce"] = tc.nonces
					w.challenge(rw, http.StatusUnauthorized, `DPoP error="use_dpop_nonce", error_description="Resource server requires nonce in DPoP proof"`)
					return
				}
				fmt.Fprint(rw, "ok")
			})
			signer := &dpopSigner{base: w.base}
			tok := w.as.issue(true, "a")
			tok.TokenType = "DPoP"
			esc := newEscalator(w)
			tr := &stepup.Transport{Base: signer, Source: w.source(tok, stepup.WithEscalator(esc)), DPoPNonce: signer.setNonce}
			c := &http.Client{Transport: tr}

			status, _ := w.mustGet(c, "/x")

			assert.Equal(t, tc.wantStatus, status)
			assert.Equal(t, tc.wantHookHit, signer.calls)
			assert.Equal(t, int32(1+tc.wantHookHit), w.hits.Load())
			assert.Zero(t, esc.calls.Load())
			assert.Zero(t, w.as.refreshHits.Load())
		})
	}
}

// A server that demands a new nonce every time gets one replay, not a loop:
// the request fails with ErrExhausted.
func TestDPoPNonceReplayedOncePerRequest(t *testing.T) {
	w := newWorld(t)
	var n atomic.Int32
	w.mux.HandleFunc("/x", func(rw http.ResponseWriter, r *http.Request) {
		rw.Header().Set("DPoP-Nonce", fmt.Sprintf("n-%d", n.Add(1)))
		w.challenge(rw, http.StatusUnauthorized, `DPoP error="use_dpop_nonce"`)
	})
	signer := &dpopSigner{base: w.base}
	tok := w.as.issue(false, "a")
	tok.TokenType = "DPoP"
	c := &http.Client{Transport: &stepup.Transport{Base: signer, Source: w.source(tok), DPoPNonce: signer.setNonce}}

	ce := w.mustStop(c, "/x", stepup.ErrExhausted)

	assert.Equal(t, http.StatusUnauthorized, ce.Status)
	assert.Equal(t, stepup.ReasonDPoPNonce, ce.Reason)
	assert.Equal(t, 1, signer.calls)
	assert.Equal(t, int32(2), w.hits.Load())
}

// With refresh token rotation, the refresh uses the current refresh token;
// a 401 that rejects a token older than the current one is replayed with the
// current token and refreshes nothing (RFC 6749 §6).
func TestRefreshRotationAndOlderTokenReplay(t *testing.T) {
	w := newWorld(t)
	slowArrived := make(chan struct{})
	releaseSlow := make(chan struct{})
	var held sync.Once
	w.mux.HandleFunc("/files", func(rw http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Has("slow") {
			held.Do(func() {
				close(slowArrived)
				<-releaseSlow
			})
		}
		if _, ok := w.check(rw, r); ok {
			fmt.Fprint(rw, "ok")
		}
	})
	tok := w.as.issue(true, "files:read")
	w.as.revoke(tok)
	c := &http.Client{Transport: w.transport(w.source(tok, stepup.WithEscalator(newEscalator(w))))}

	// The slow request goes out with the first token and is held.
	slow := make(chan int, 1)
	go func() {
		slow <- w.status(c, "/files?slow")
	}()
	recv(t, slowArrived)
	// The fast one is rejected, refreshes and succeeds with the new token.
	status, _ := w.mustGet(c, "/files")
	require.Equal(t, http.StatusOK, status)
	require.Equal(t, int32(1), w.as.refreshHits.Load())
	// Now the slow one is rejected for the old token: a newer one exists.
	close(releaseSlow)
	assert.Equal(t, http.StatusOK, recv(t, slow))
	assert.Equal(t, int32(1), w.as.refreshHits.Load(), "the older token's 401 must not refresh")

	// A second expiry refreshes with the rotated refresh token.
	cur, err := c.Transport.(*stepup.Transport).Source.Token()
	require.NoError(t, err)
	w.as.revoke(cur)
	status, _ = w.mustGet(c, "/files")
	assert.Equal(t, http.StatusOK, status)
	forms := w.as.refreshForms()
	require.Len(t, forms, 2)
	assert.Equal(t, tok.RefreshToken, forms[0].Get("refresh_token"))
	assert.Equal(t, cur.RefreshToken, forms[1].Get("refresh_token"))
	assert.NotEqual(t, forms[0].Get("refresh_token"), forms[1].Get("refresh_token"))
	assert.Zero(t, w.as.reuses.Load(), "a rotated-out refresh token was reused")
}

// An identical 401 after a refresh is not answered with a second refresh
// (RFC 9110 §15.5.2): the request fails with ErrExhausted.
func TestIdenticalChallengeAfterRefreshStops(t *testing.T) {
	w := newWorld(t)
	w.mux.HandleFunc("/x", func(rw http.ResponseWriter, r *http.Request) {
		w.challenge(rw, http.StatusUnauthorized, `Bearer error="invalid_token", error_description="attempt %s"`, r.Header.Get("Authorization")[7:12])
	})
	esc := newEscalator(w)
	c := &http.Client{Transport: w.transport(w.source(w.as.issue(true, "a"), stepup.WithEscalator(esc)))}

	ce := w.mustStop(c, "/x", stepup.ErrExhausted)

	assert.Equal(t, http.StatusUnauthorized, ce.Status)
	assert.Equal(t, stepup.ErrorInvalidToken, ce.Challenge.Error)
	assert.Equal(t, int32(1), w.as.refreshHits.Load())
	assert.Zero(t, esc.calls.Load())
	assert.Equal(t, int32(2), w.hits.Load())
}

// invalid_token without a refresh token, or with a refresh token the
// authorization server refuses (invalid_grant: the grant is gone), goes to
// the Escalator for a re-authorization. Without an Escalator, a 401 with
// nothing to try comes back untouched, and a refused refresh fails the
// request with ErrInvalidGrant.
func TestInvalidTokenWithoutRefreshReauthorizes(t *testing.T) {
	for _, tc := range []struct {
		name        string
		withRefresh bool
		failRefresh bool
		escalator   bool
		wantStatus  int   // of the response, when no error
		wantErr     error // else
		wantRefresh int32
	}{
		{"no refresh token", false, false, true, http.StatusOK, nil, 0},
		{"refresh refused", true, true, true, http.StatusOK, nil, 1},
		{"no refresh token, no Escalator", false, false, false, http.StatusUnauthorized, nil, 0},
		{"refresh refused, no Escalator", true, true, false, 0, stepup.ErrInvalidGrant, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t)
			w.protect("/files", "files:read")
			w.as.failRefresh.Store(tc.failRefresh)
			tok := w.as.issue(tc.withRefresh, "files:read")
			w.as.revoke(tok)
			esc := newEscalator(w)
			var opts []stepup.TokenSourceOption
			if tc.escalator {
				opts = append(opts, stepup.WithEscalator(esc))
			}
			tr := w.transport(w.source(tok, opts...))
			c := &http.Client{Transport: tr}

			if tc.wantErr != nil {
				ce := w.mustStop(c, "/files", tc.wantErr)
				assert.Equal(t, http.StatusUnauthorized, ce.Status)
			} else {
				status, _ := w.mustGet(c, "/files")
				assert.Equal(t, tc.wantStatus, status)
			}
			assert.Equal(t, tc.wantRefresh, w.as.refreshHits.Load())
			if tc.escalator {
				require.Equal(t, int32(1), esc.calls.Load())
				assert.Equal(t, stepup.ReasonReauthorization, esc.requests()[0].Reason)
				assert.Equal(t, stepup.Scopes{"files:read"}, esc.requests()[0].Scopes)
			}
		})
	}
}

// A 401 without error after a token was sent means the token is invalid;
// after no token, authorization is required (RFC 6750 §3.1).
func Test401WithoutErrorCode(t *testing.T) {
	w := newWorld(t)
	w.mux.HandleFunc("/x", func(rw http.ResponseWriter, r *http.Request) {
		if g, ok := w.checkQuiet(r); ok && g != nil {
			fmt.Fprint(rw, "ok")
			return
		}
		w.challenge(rw, http.StatusUnauthorized, `Bearer realm="x"`)
	})
	tok := w.as.issue(true, "a")
	w.as.revoke(tok)
	esc := newEscalator(w)
	c := &http.Client{Transport: w.transport(w.source(tok, stepup.WithEscalator(esc)))}
	status, _ := w.mustGet(c, "/x")
	assert.Equal(t, http.StatusOK, status)
	assert.Equal(t, int32(1), w.as.refreshHits.Load(), "treated as invalid_token")
	assert.Zero(t, esc.calls.Load())

	c = &http.Client{Transport: w.transport(w.source(nil, stepup.WithEscalator(esc)))}
	status, _ = w.mustGet(c, "/x")
	assert.Equal(t, http.StatusOK, status)
	require.Equal(t, int32(1), esc.calls.Load())
	assert.Equal(t, stepup.ReasonAuthorizationRequired, esc.requests()[0].Reason)
	assert.Empty(t, esc.requests()[0].Scopes, "no scope anywhere: the Escalator decides")
}

// A 401 without any WWW-Authenticate breaks RFC 9110 §11.6.1 but still
// means authorization is needed: with no token sent the Escalator is asked
// (RFC 9110 §15.5.2), with a token sent it is refreshed.
func Test401WithoutChallenge(t *testing.T) {
	w := newWorld(t)
	w.mux.HandleFunc("/x", func(rw http.ResponseWriter, r *http.Request) {
		if g, ok := w.checkQuiet(r); ok && g != nil {
			fmt.Fprint(rw, "ok")
			return
		}
		rw.WriteHeader(http.StatusUnauthorized)
	})
	esc := newEscalator(w)
	c := &http.Client{Transport: w.transport(w.source(nil, stepup.WithScopes("files:read"), stepup.WithEscalator(esc)))}
	status, _ := w.mustGet(c, "/x")
	assert.Equal(t, http.StatusOK, status)
	require.Equal(t, int32(1), esc.calls.Load())
	er := esc.requests()[0]
	assert.Equal(t, stepup.ReasonAuthorizationRequired, er.Reason)
	assert.Equal(t, stepup.Scopes{"files:read"}, er.Scopes, "the scopes configured for the first authorization")
	assert.Empty(t, er.ResourceMetadata)

	tok := w.as.issue(true, "a")
	w.as.revoke(tok)
	c = &http.Client{Transport: w.transport(w.source(tok, stepup.WithEscalator(esc)))}
	status, _ = w.mustGet(c, "/x")
	assert.Equal(t, http.StatusOK, status)
	assert.Equal(t, int32(1), w.as.refreshHits.Load())
	assert.Equal(t, int32(1), esc.calls.Load())
}

func (w *world) checkQuiet(r *http.Request) (*grant, bool) {
	auth := r.Header.Get("Authorization")
	if auth == "" {
		return nil, false
	}
	g := w.as.lookup(strings.TrimPrefix(auth, "Bearer "))
	return g, g != nil
}

// A challenge other than the one just remedied gets its own remedy; the same
// one coming back stops the request with ErrExhausted (RFC 9110 §15.5.2):
// the guard keys a challenge by its own error code, not by the code the
// Transport read into it, which changes once a token goes out. A request
// renews a rejected token once, by refresh or by re-authorization, however
// its 401s are written.
func TestRemedyPerChallenge(t *testing.T) {
	type answer struct {
		status int
		header string
	}
	bare := answer{http.StatusUnauthorized, `Bearer realm="files"`}
	invalid := answer{http.StatusUnauthorized, `Bearer realm="files", error="invalid_token"`}
	scope := answer{http.StatusForbidden, `Bearer error="insufficient_scope", scope="files:write"`}
	for _, tc := range []struct {
		name         string
		token        bool // the source starts with a token
		refreshToken bool // tokens come with refresh tokens
		script       []answer
		stopped      bool // the request fails with ErrExhausted, else gets a 200
		wantEsc      int32
		wantRefresh  int32
		wantSends    int32
	}{
		{"no token: bare 401, then invalid_token", false, true, []answer{bare, invalid}, false, 1, 1, 3},
		{"no token: bare 401, then insufficient_scope", false, true, []answer{bare, scope}, false, 2, 0, 3},
		{"no token: bare 401 twice", false, true, []answer{bare, bare}, true, 1, 0, 2},
		{"token: bare 401, then invalid_token", true, true, []answer{bare, invalid}, true, 0, 1, 2},
		{"token: invalid_token, then bare 401", true, true, []answer{invalid, bare}, true, 0, 1, 2},
		{"token without refresh token: bare 401, then invalid_token", true, false, []answer{bare, invalid}, true, 1, 0, 2},
		{"token: invalid_token, then insufficient_scope", true, true, []answer{invalid, scope}, false, 1, 1, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkLeaks(t)
			w := newWorld(t)
			w.as.RefreshAlways = tc.refreshToken
			var seq atomic.Int32
			w.mux.HandleFunc("/x", func(rw http.ResponseWriter, r *http.Request) {
				if n := int(seq.Add(1)); n <= len(tc.script) {
					w.challenge(rw, tc.script[n-1].status, "%s", tc.script[n-1].header)
					return
				}
				if _, ok := w.checkQuiet(r); !ok {
					w.challenge(rw, http.StatusUnauthorized, `Bearer realm="files"`)
					return
				}
				fmt.Fprint(rw, "ok")
			})
			var tok *oauth2.Token
			if tc.token {
				tok = w.as.issue(tc.refreshToken, "files:read")
			}
			esc := newEscalator(w)
			c := &http.Client{Transport: w.transport(w.source(tok, stepup.WithEscalator(esc)))}

			if tc.stopped {
				ce := w.mustStop(c, "/x", stepup.ErrExhausted)
				assert.Equal(t, http.StatusUnauthorized, ce.Status)
			} else {
				status, _ := w.mustGet(c, "/x")
				assert.Equal(t, http.StatusOK, status)
			}
			assert.Equal(t, tc.wantEsc, esc.calls.Load(), "Escalator calls")
			assert.Equal(t, tc.wantRefresh, w.as.refreshHits.Load(), "refreshes")
			assert.Equal(t, tc.wantSends, w.hits.Load(), "sends")
		})
	}
}

// Dispatch is on the error code; a 401 carrying insufficient_scope is a
// step-up, not a refresh (RFC 6750 §3.1).
func TestErrorCodeWinsOverStatus(t *testing.T) {
	w := newWorld(t)
	w.mux.HandleFunc("/x", func(rw http.ResponseWriter, r *http.Request) {
		g, ok := w.check(rw, r)
		if !ok {
			return
		}
		if !g.scopes.Contains("b") {
			w.challenge(rw, http.StatusUnauthorized, `Bearer error="insufficient_scope", scope="b"`)
			return
		}
		fmt.Fprint(rw, "ok")
	})
	esc := newEscalator(w)
	c := &http.Client{Transport: w.transport(w.source(w.as.issue(true, "a"), stepup.WithEscalator(esc)))}

	status, _ := w.mustGet(c, "/x")

	assert.Equal(t, http.StatusOK, status)
	assert.Equal(t, int32(1), esc.calls.Load())
	assert.Zero(t, w.as.refreshHits.Load())
}

// By default a 403 Bearer challenge with scope and no error (the go-sdk
// server's answer) is insufficient_scope; StrictInsufficientScope turns that
// off.
func TestBare403WithScope(t *testing.T) {
	for _, strict := range []bool{false, true} {
		t.Run(fmt.Sprint("strict=", strict), func(t *testing.T) {
			w := newWorld(t)
			w.mux.HandleFunc("/x", func(rw http.ResponseWriter, r *http.Request) {
				g, ok := w.check(rw, r)
				if !ok {
					return
				}
				if !g.scopes.Contains("b") {
					w.challenge(rw, http.StatusForbidden, `Bearer scope="b"`)
					return
				}
				fmt.Fprint(rw, "ok")
			})
			esc := newEscalator(w)
			tr := w.transport(w.source(w.as.issue(true, "a"), stepup.WithEscalator(esc)))
			tr.StrictInsufficientScope = strict
			c := &http.Client{Transport: tr}

			status, _ := w.mustGet(c, "/x")

			if strict {
				assert.Equal(t, http.StatusForbidden, status)
				assert.Zero(t, esc.calls.Load())
			} else {
				assert.Equal(t, http.StatusOK, status)
				assert.Equal(t, int32(1), esc.calls.Load())
			}
		})
	}
}

// resource_metadata reaches the Escalator only when it is safe to fetch
// (RFC 9728 §7.7, MCP security best practices, SSRF).
func TestResourceMetadataValidatedForEscalator(t *testing.T) {
	for _, tc := range []struct {
		name        string
		metadata    string
		crossOrigin bool
		want        string
	}{
		{"same origin", "{rs}/.well-known/oauth-protected-resource/mcp", false, "{rs}/.well-known/oauth-protected-resource/mcp"},
		{"other origin refused by default", "https://as.example/.well-known/oauth-protected-resource", false, ""},
		{"other origin allowed", "https://as.example/.well-known/oauth-protected-resource", true, "https://as.example/.well-known/oauth-protected-resource"},
		{"link-local even when allowed", "http://169.254.169.254/latest/meta-data", true, ""},
		{"plain http elsewhere", "http://as.example/prm", true, ""},
		{"not http", "file:///etc/passwd", true, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t)
			meta := strings.ReplaceAll(tc.metadata, "{rs}", w.rs.URL)
			w.mux.HandleFunc("/x", func(rw http.ResponseWriter, r *http.Request) {
				if g, ok := w.check(rw, r); ok && !g.scopes.Contains("b") {
					w.challenge(rw, http.StatusForbidden, `Bearer error="insufficient_scope", scope="b", resource_metadata=%q`, meta)
					return
				}
				fmt.Fprint(rw, "ok")
			})
			esc := newEscalator(w)
			tr := w.transport(w.source(w.as.issue(true, "a"), stepup.WithEscalator(esc)))
			tr.AllowCrossOriginMetadata = tc.crossOrigin
			c := &http.Client{Transport: tr}

			w.mustGet(c, "/x")

			require.Equal(t, int32(1), esc.calls.Load())
			assert.Equal(t, strings.ReplaceAll(tc.want, "{rs}", w.rs.URL), esc.requests()[0].ResourceMetadata)
			assert.Equal(t, meta, esc.requests()[0].Challenge.ResourceMetadata, "the challenge keeps what was received")
		})
	}
}

// A declined escalation is a typed error that says so, and the user is not
// asked again for the same challenge until ExhaustedTTL passes (MCP
// authorization, "Scope Minimization": cache recent failures). Later
// requests get the same typed error as the first, so a caller can tell a
// refusal however late it asks.
func TestDeclinedEscalationIsRemembered(t *testing.T) {
	w := newWorld(t)
	w.protect("/write", "files:write")
	tok := w.as.issue(true, "files:read")
	esc := newEscalator(w)
	esc.decline.Store(true)
	ts := w.source(tok, stepup.WithEscalator(esc))
	tr := w.transport(ts)
	c := &http.Client{Transport: tr}

	_, err := w.get(c, "/write")

	require.Error(t, err)
	assert.ErrorIs(t, err, stepup.ErrDeclined)
	var ee *stepup.ChallengeError
	require.ErrorAs(t, err, &ee)
	assert.ErrorIs(t, ee, stepup.ErrDeclined)
	assert.Equal(t, stepup.ReasonInsufficientScope, ee.Reason)
	assert.Equal(t, http.StatusForbidden, ee.Status)
	assert.Equal(t, stepup.ErrorInsufficientScope, ee.Challenge.Error)
	assert.Equal(t, stepup.Scopes{"files:write"}, ee.Challenge.Scope)
	assert.NotContains(t, err.Error(), secretMark)

	for range 3 {
		ce := w.mustStop(c, "/write", stepup.ErrDeclined)
		assert.Equal(t, http.StatusForbidden, ce.Status)
		assert.Equal(t, stepup.Scopes{"files:write"}, ce.Challenge.Scope)
		assert.Contains(t, ce.Error(), "declined earlier")
	}
	assert.Equal(t, int32(1), esc.calls.Load(), "the user was asked again")

	ts.SetExhaustedTTL(time.Nanosecond)
	_, err = w.get(c, "/write")
	assert.ErrorIs(t, err, stepup.ErrDeclined)
	assert.Equal(t, int32(2), esc.calls.Load(), "asked again after the TTL")
}

// No token appears in an error message, a formatted value or a log line,
// even when the Escalator, a panic or the token endpoint puts one there.
func TestTokensNeverInErrorsOrLogs(t *testing.T) {
	w := newWorld(t)
	w.protect("/files", "files:read")
	w.protect("/write", "files:write")
	tok := w.as.issue(true, "files:read")
	w.as.revoke(tok)
	w.as.failRefresh.Store(true)
	w.as.echoOnFailure.Store(true) // the token endpoint's error names the refresh token
	tap := newLogTap()
	leaky := tokenEscalator(func(ctx context.Context, req *stepup.EscalationRequest) (*oauth2.Token, error) {
		return nil, fmt.Errorf("login failed for %s (refresh %s)", req.RejectedToken.AccessToken, req.RejectedToken.RefreshToken)
	})
	tr := w.transport(w.source(tok, stepup.WithEscalator(leaky)))
	tr.Logger = slog.New(tap)
	c := &http.Client{Transport: tr}
	// The escalation's goroutine logs its end after it has handed the
	// request its error.
	ended := tap.waitFor("stepup: escalation end")

	_, err := w.get(c, "/files")

	require.Error(t, err)
	var ee *stepup.ChallengeError
	require.ErrorAs(t, err, &ee)
	select {
	case <-ended:
	case <-time.After(10 * time.Second):
		t.Fatal("the escalation never logged its end")
	}
	for _, s := range []string{err.Error(), fmt.Sprintf("%v", err), fmt.Sprintf("%+v", err), fmt.Sprintf("%#v", ee), fmt.Sprintf("%+v", ee)} {
		assert.NotContains(t, s, secretMark)
	}
	assert.Contains(t, err.Error(), "login failed for [REDACTED]")
	assert.Contains(t, tap.String(), "stepup: re-authorizing")
	assert.Contains(t, tap.String(), "invalid_grant", "the refused refresh is logged")
	assert.Contains(t, tap.String(), "stepup: escalation end")

	panicky := tokenEscalator(func(ctx context.Context, req *stepup.EscalationRequest) (*oauth2.Token, error) {
		panic("cannot use " + req.RejectedToken.AccessToken)
	})
	tr2 := w.transport(w.source(w.as.issue(true, "files:read"), stepup.WithEscalator(panicky)))
	tr2.Logger = slog.New(tap)
	_, err = w.get(&http.Client{Transport: tr2}, "/write")
	require.ErrorAs(t, err, &ee)
	assert.Contains(t, err.Error(), "panicked")
	assert.NotContains(t, err.Error(), secretMark)
	assert.NotErrorIs(t, ee, stepup.ErrDeclined)

	log := tap.String()
	assert.NotContains(t, log, secretMark)
	for _, ev := range []string{"stepup: challenge", "stepup: escalation start"} {
		assert.Contains(t, log, ev)
	}
}

// An EscalationRequest prints without its token, whatever the verb.
func TestEscalationRequestPrintsWithoutToken(t *testing.T) {
	w := newWorld(t)
	w.protect("/write", "files:write")
	var seen *stepup.EscalationRequest
	esc := tokenEscalator(func(ctx context.Context, req *stepup.EscalationRequest) (*oauth2.Token, error) {
		seen = req
		return nil, stepup.ErrDeclined
	})
	c := &http.Client{Transport: w.transport(w.source(w.as.issue(true, "files:read"), stepup.WithEscalator(esc)))}
	_, err := w.get(c, "/write")
	require.ErrorIs(t, err, stepup.ErrDeclined)
	require.NotNil(t, seen)

	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("escalating", "req", seen, "value", *seen)
	//lint:ignore S1025 each verb is what is tested, %s among them
	for _, s := range []string{fmt.Sprint(seen), fmt.Sprintf("%v", *seen), fmt.Sprintf("%+v", *seen), fmt.Sprintf("%#v", *seen), fmt.Sprintf("%s", seen), buf.String()} {
		assert.NotContains(t, s, secretMark)
		assert.Contains(t, s, "files:write")
	}
}

// The caller's request is never modified (the RoundTripper contract): no Authorization header
// appears on it, its body and URL stay as they were.
func TestCallerRequestNotModified(t *testing.T) {
	w := newWorld(t)
	w.protect("POST /tools", "tools:call")
	esc := newEscalator(w)
	c := w.transport(w.source(w.as.issue(true, "files:read"), stepup.WithEscalator(esc)))
	body := strings.NewReader("payload")
	req, err := http.NewRequestWithContext(w.ctx(), http.MethodPost, w.rs.URL+"/tools", body)
	require.NoError(t, err)
	req.Header.Set("X-Trace", "1")
	before := req.Header.Clone()
	u := *req.URL

	resp, err := c.RoundTrip(req)

	require.NoError(t, err)
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Equal(t, "ok /tools payload", string(b))
	assert.Equal(t, before, req.Header)
	assert.Empty(t, req.Header.Get("Authorization"))
	assert.Equal(t, u, *req.URL)
}

// Composition: stepup above an oauth2.Transport whose Source is stepup's
// TokenSource. oauth2.Transport attaches the token; stepup still answers the
// challenges and the replay carries the new token.
func TestComposeAboveOAuth2Transport(t *testing.T) {
	checkLeaks(t)
	w := newWorld(t)
	w.protect("/files", "files:read")
	w.protect("/write", "files:read", "files:write")
	tok := w.as.issue(true, "files:read")
	esc := newEscalator(w)
	ts := w.source(tok, stepup.WithEscalator(esc))
	tr := &stepup.Transport{Base: &oauth2.Transport{Source: ts, Base: w.base}, Source: ts}
	c := &http.Client{Transport: tr}

	status, _ := w.mustGet(c, "/write")
	assert.Equal(t, http.StatusOK, status)
	assert.Equal(t, int32(1), esc.calls.Load())
	assert.Zero(t, w.as.refreshHits.Load())

	cur, err := ts.Token()
	require.NoError(t, err)
	w.as.revoke(cur)
	status, _ = w.mustGet(c, "/files")
	assert.Equal(t, http.StatusOK, status)
	assert.Equal(t, int32(1), w.as.refreshHits.Load())
}

// Composition: retryablehttp above stepup. With stepup.CheckRetry a declined
// or failed escalation is asked once, not once per retry; a successful one
// replays POST bodies through retryablehttp's GetBody.
func TestComposeUnderRetryableHTTP(t *testing.T) {
	newClient := func(w *world, esc stepup.Escalator, check retryablehttp.CheckRetry) *retryablehttp.Client {
		rc := retryablehttp.NewClient()
		rc.HTTPClient = &http.Client{Transport: w.transport(w.source(w.as.issue(true, "files:read"), stepup.WithEscalator(esc)))}
		rc.RetryMax = 4
		rc.RetryWaitMin, rc.RetryWaitMax = time.Millisecond, time.Millisecond
		rc.Logger = nil
		rc.CheckRetry = check
		return rc
	}
	post := func(t *testing.T, w *world, rc *retryablehttp.Client) (*http.Response, error) {
		req, err := retryablehttp.NewRequestWithContext(w.ctx(), http.MethodPost, w.rs.URL+"/tools", []byte("call"))
		require.NoError(t, err)
		resp, err := rc.Do(req)
		if err == nil {
			t.Cleanup(func() { resp.Body.Close() })
		}
		return resp, err
	}

	t.Run("declined is asked once", func(t *testing.T) {
		w := newWorld(t)
		w.protect("POST /tools", "tools:call")
		esc := newEscalator(w)
		esc.decline.Store(true)
		_, err := post(t, w, newClient(w, esc, stepup.CheckRetry(nil)))
		assert.ErrorIs(t, err, stepup.ErrDeclined)
		assert.Equal(t, int32(1), esc.calls.Load())
	})
	t.Run("failure is asked once with CheckRetry", func(t *testing.T) {
		w := newWorld(t)
		w.protect("POST /tools", "tools:call")
		esc := newEscalator(w)
		boom := errors.New("authorization server unreachable")
		esc.fail.Store(&boom)
		_, err := post(t, w, newClient(w, esc, stepup.CheckRetry(retryablehttp.DefaultRetryPolicy)))
		assert.ErrorIs(t, err, boom)
		assert.Equal(t, int32(1), esc.calls.Load())
	})
	t.Run("failure is asked five times without it", func(t *testing.T) {
		w := newWorld(t)
		w.protect("POST /tools", "tools:call")
		esc := newEscalator(w)
		boom := errors.New("authorization server unreachable")
		esc.fail.Store(&boom)
		_, err := post(t, w, newClient(w, esc, retryablehttp.DefaultRetryPolicy))
		assert.Error(t, err)
		assert.Equal(t, int32(5), esc.calls.Load(), "this is what CheckRetry prevents")
	})
	t.Run("success replays the body", func(t *testing.T) {
		w := newWorld(t)
		w.protect("POST /tools", "tools:call")
		esc := newEscalator(w)
		resp, err := post(t, w, newClient(w, esc, stepup.CheckRetry(nil)))
		require.NoError(t, err)
		b, _ := io.ReadAll(resp.Body)
		assert.Equal(t, "ok /tools call", string(b))
		assert.Equal(t, int32(1), esc.calls.Load())
	})
}

// A negative MaxReplays turns answering challenges off; a nil Source is an
// error, not a panic.
func TestTransportLimits(t *testing.T) {
	w := newWorld(t)
	w.protect("/write", "files:write")
	esc := newEscalator(w)
	tr := w.transport(w.source(w.as.issue(true, "a"), stepup.WithEscalator(esc)))
	tr.MaxReplays = -1
	status, _ := w.mustGet(&http.Client{Transport: tr}, "/write")
	assert.Equal(t, http.StatusForbidden, status)
	assert.Zero(t, esc.calls.Load())

	_, err := w.get(&http.Client{Transport: &stepup.Transport{Base: w.base}}, "/write")
	assert.ErrorContains(t, err, "Source is nil")
}

// An expired token is refreshed before it is sent, not after a 401.
func TestExpiredTokenRefreshedBeforeSending(t *testing.T) {
	w := newWorld(t)
	w.protect("/files", "files:read")
	tok := w.as.issue(true, "files:read")
	tok.Expiry = time.Now().Add(-time.Minute)
	w.as.revoke(tok)
	c := &http.Client{Transport: w.transport(w.source(tok))}

	status, _ := w.mustGet(c, "/files")

	assert.Equal(t, http.StatusOK, status)
	assert.Equal(t, int32(1), w.as.refreshHits.Load())
	assert.Equal(t, int32(1), w.hits.Load(), "the expired token went out")
}

// staticResponder answers every request with a canned 200, so that the cost
// measured is stepup's alone.
type staticResponder struct{ resp http.Response }

func (s *staticResponder) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body != nil {
		req.Body.Close()
	}
	r := s.resp
	return &r, nil
}

// The path without challenge is cheap: a copy of the request and of its
// header, and nothing parsed.
func TestHotPathAllocations(t *testing.T) {
	ts, err := stepup.NewTokenSource("https://api.example/mcp", &oauth2.Token{AccessToken: "at-" + secretMark, Expiry: time.Now().Add(time.Hour)})
	require.NoError(t, err)
	base := &staticResponder{resp: http.Response{StatusCode: http.StatusOK, Header: http.Header{"Content-Type": {"text/plain"}}, Body: http.NoBody}}
	tr := &stepup.Transport{Base: base, Source: ts}
	req, err := http.NewRequest(http.MethodGet, "https://api.example/mcp", nil)
	require.NoError(t, err)
	req.Header.Set("Accept", "application/json")

	allocs := testing.AllocsPerRun(100, func() {
		if _, err := tr.RoundTrip(req); err != nil {
			t.Fatal(err)
		}
	})
	// The responder's response, the request copy and the header map (two
	// allocations); header values and the Authorization field are shared.
	assert.LessOrEqual(t, allocs, 4.0)
}
