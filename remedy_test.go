package stepup_test

// The TokenSource as the one authority for a resource's grant: the remedies
// of every Transport sharing it are coordinated there. The first tests are
// regressions of defects the state split between Transport and TokenSource
// caused.

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"

	"github.com/stepup-go/stepup"
)

// protectFar serves path like protect, but its 403 names a resource_metadata
// URL of another origin, which the Transport refuses (and logs) before it
// escalates.
func (w *world) protectFar(path string, need ...string) {
	w.mux.HandleFunc(path, func(rw http.ResponseWriter, r *http.Request) {
		g, ok := w.check(rw, r)
		if !ok {
			return
		}
		if !g.scopes.ContainsAll(need) {
			w.challenge(rw, http.StatusForbidden, `Bearer error="insufficient_scope", scope=%q, resource_metadata="https://elsewhere.example/prm"`, need[0])
			return
		}
		fmt.Fprintf(rw, "ok %s", r.URL.Path)
	})
}

// A grant installed while a request is on its way to escalate (here by
// Set, from the Logger, between the request's look at the current token and
// the start of the escalation) does not count as the escalation: the user
// is asked, the request succeeds, and the challenge is not marked spent, so
// later requests are not refused without anyone having been asked.
func TestSupersededEscalationIsNotSpent(t *testing.T) {
	checkLeaks(t)
	w := newWorld(t)
	w.protectFar("/x", "x")
	esc := newEscalator(w)
	ts := w.source(w.as.issue(true, "files:read"), stepup.WithScopes("files:read"), stepup.WithEscalator(esc))
	var once sync.Once
	tap := newLogTap()
	tap.on = func(r slog.Record) {
		if r.Message == "stepup: resource_metadata refused" {
			once.Do(func() { ts.Set(w.as.issue(true, "files:read"), stepup.Scopes{"files:read"}) })
		}
	}
	tr := w.transport(ts)
	tr.Logger = slog.New(tap)
	c := &http.Client{Transport: tr}

	status, _ := w.mustGet(c, "/x")
	assert.Equal(t, http.StatusOK, status)
	assert.Equal(t, int32(1), esc.calls.Load(), "the user was asked")

	status, _ = w.mustGet(c, "/x")
	assert.Equal(t, http.StatusOK, status, "a later request is served, not refused as exhausted")
	assert.Equal(t, int32(1), esc.calls.Load())
}

// Requests that need different scopes at the same time get one prompt
// each, one after the other, and the second asks for the union with what
// the first granted: the final grant holds both scopes, and no third prompt
// follows.
func TestConcurrentEscalationsForDifferentScopesKeepBoth(t *testing.T) {
	checkLeaks(t)
	w := newWorld(t)
	w.protect("/a", "a")
	w.protect("/b", "b")
	esc := newEscalator(w)
	esc.entered = make(chan *stepup.EscalationRequest, 2)
	esc.gate = make(chan struct{})
	bWaits := make(chan struct{}, 1)
	tap := newLogTap()
	tap.on = func(r slog.Record) {
		if r.Message == "stepup: waiting for an escalation in progress" {
			bWaits <- struct{}{}
		}
	}
	ts := w.source(w.as.issue(true, "files:read"), stepup.WithScopes("files:read"), stepup.WithEscalator(esc))
	tr := w.transport(ts)
	tr.Logger = slog.New(tap)
	c := &http.Client{Transport: tr}

	statuses := make(chan int, 2)
	go func() { statuses <- w.status(c, "/a") }()
	first := recv(t, esc.entered)
	require.Equal(t, stepup.Scopes{"files:read", "a"}, first.Scopes)
	go func() { statuses <- w.status(c, "/b") }()
	select {
	case <-bWaits: // one prompt at a time
	case second := <-esc.entered:
		t.Fatalf("a second prompt while the first is open, for %q", second.Scopes)
	}
	esc.gate <- struct{}{} // the user consents to a
	second := recv(t, esc.entered)
	assert.Equal(t, stepup.Scopes{"files:read", "a", "b"}, second.Scopes, "the union with the grant now current")
	esc.gate <- struct{}{} // and to b

	assert.Equal(t, http.StatusOK, recv(t, statuses))
	assert.Equal(t, http.StatusOK, recv(t, statuses))
	_, granted := ts.Scopes()
	assert.True(t, granted.ContainsAll(stepup.Scopes{"files:read", "a", "b"}), "granted %q", granted)
	for _, path := range []string{"/a", "/b"} {
		status, _ := w.mustGet(c, path)
		assert.Equal(t, http.StatusOK, status)
	}
	assert.Equal(t, int32(2), esc.calls.Load(), "prompts")
}

// Two Transports sharing one source share its remedies: one prompt for a
// challenge both draw at once, and one memory of a declined challenge.
func TestTransportsSharingSourcePromptOnce(t *testing.T) {
	checkLeaks(t)
	w := newWorld(t)
	w.protect("/write", "files:write")
	w.protect("/admin", "admin")
	esc := newEscalator(w)
	esc.entered = make(chan *stepup.EscalationRequest, 2)
	esc.gate = make(chan struct{})
	ts := w.source(w.as.issue(true, "files:read"), stepup.WithEscalator(esc))
	joined := make(chan struct{}, 1)
	tap := newLogTap()
	tap.on = func(r slog.Record) {
		if r.Message == "stepup: waiting for an escalation in progress" {
			joined <- struct{}{}
		}
	}
	var clients [2]*http.Client
	for i := range clients {
		tr := w.transport(ts)
		tr.Logger = slog.New(tap)
		clients[i] = &http.Client{Transport: tr}
	}

	statuses := make(chan int, 2)
	go func() { statuses <- w.status(clients[0], "/write") }()
	recv(t, esc.entered)
	go func() { statuses <- w.status(clients[1], "/write") }()
	select {
	case <-joined:
	case <-esc.entered:
		t.Fatal("the second Transport prompted for the same challenge")
	}
	close(esc.gate)
	assert.Equal(t, http.StatusOK, recv(t, statuses))
	assert.Equal(t, http.StatusOK, recv(t, statuses))
	assert.Equal(t, int32(1), esc.calls.Load(), "prompts")

	esc.decline.Store(true)
	ce := w.mustStop(clients[0], "/admin", stepup.ErrDeclined)
	assert.Equal(t, http.StatusForbidden, ce.Status)
	ce = w.mustStop(clients[1], "/admin", stepup.ErrDeclined)
	assert.Contains(t, ce.Error(), "declined earlier", "the other Transport remembers the refusal")
	assert.Equal(t, int32(2), esc.calls.Load(), "prompts")
}

// The escalation policy is the source's: whichever of the Transports
// sharing it asks, and however their own settings differ, an escalation
// is bounded by the source's timeout and a refusal remembered for the
// source's TTL (TestTransportsSharingSourcePromptOnce: for all of them).
func TestSourcePolicyWhicheverTransportAsks(t *testing.T) {
	checkLeaks(t)
	w := newWorld(t)
	w.protect("/write", "files:write")
	w.protect("/admin", "admin")
	esc := newEscalator(w)
	ts := w.source(w.as.issue(true, "files:read"), stepup.WithEscalator(esc),
		stepup.WithEscalationTimeout(time.Hour), stepup.WithExhaustedTTL(time.Nanosecond))
	a := &http.Client{Transport: w.transport(ts)}
	trB := w.transport(ts)
	trB.MaxReplays, trB.StrictInsufficientScope, trB.BufferBody = 1, true, 1<<10
	b := &http.Client{Transport: trB}

	status, _ := w.mustGet(b, "/write")
	require.Equal(t, http.StatusOK, status)
	esc.mu.Lock()
	deadline, ok := esc.ctxs[0].Deadline()
	esc.mu.Unlock()
	require.True(t, ok)
	assert.WithinDuration(t, time.Now().Add(time.Hour), deadline, time.Minute, "the source's timeout, not the default")

	esc.decline.Store(true)
	w.mustStop(a, "/admin", stepup.ErrDeclined)
	w.mustStop(b, "/admin", stepup.ErrDeclined)
	assert.Equal(t, int32(3), esc.calls.Load(), "asked again: the source's TTL lapsed, not the default ten minutes")
}

// An expired token without a refresh token (MCP servers often issue none)
// goes out as it is; the resource's 401 leads to one re-authorization,
// whether stepup attaches the token or an oauth2.Transport below it does.
func TestExpiredTokenWithoutRefreshTokenReauthorizes(t *testing.T) {
	for _, composed := range []bool{false, true} {
		t.Run(fmt.Sprintf("below an oauth2.Transport: %v", composed), func(t *testing.T) {
			checkLeaks(t)
			w := newWorld(t)
			w.protect("/files", "files:read")
			tok := w.as.issue(false, "files:read")
			tok.Expiry = time.Now().Add(-time.Minute)
			w.as.revoke(tok)
			esc := newEscalator(w)
			ts := w.source(tok, stepup.WithScopes("files:read"), stepup.WithEscalator(esc))
			tr := w.transport(ts)
			if composed {
				tr.Base = &oauth2.Transport{Source: ts, Base: w.base}
			}

			status, _ := w.mustGet(&http.Client{Transport: tr}, "/files")

			assert.Equal(t, http.StatusOK, status)
			require.Equal(t, int32(1), esc.calls.Load())
			assert.Equal(t, stepup.ReasonReauthorization, esc.requests()[0].Reason)
			assert.Equal(t, int32(2), w.hits.Load(), "the expired token went out once")
			assert.Zero(t, w.as.refreshHits.Load())
		})
	}
}

// The MCP go-sdk server answers a missing token and an expired one alike:
// 401 with scope and resource_metadata, no error code. The same challenge
// after a token the resource has taken is not the first login coming
// straight back but the token expiring: with no refresh token, it gets a
// re-authorization, not ErrExhausted.
func TestSameBare401AfterTokenExpiredReauthorizes(t *testing.T) {
	checkLeaks(t)
	w := newWorld(t)
	w.mux.HandleFunc("/mcp", func(rw http.ResponseWriter, r *http.Request) {
		if g := w.as.lookup(strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")); g == nil {
			w.challenge(rw, http.StatusUnauthorized, `Bearer resource_metadata=%q, scope="files:read"`, w.metadataURL())
			return
		}
		fmt.Fprint(rw, "ok")
	})
	w.as.RefreshAlways = false
	esc := newEscalator(w)
	ts := w.source(nil, stepup.WithEscalator(esc))
	c := &http.Client{Transport: w.transport(ts)}

	for range 3 {
		status, _ := w.mustGet(c, "/mcp")
		require.Equal(t, http.StatusOK, status)
	}
	require.Equal(t, int32(1), esc.calls.Load())
	tok, err := ts.Token()
	require.NoError(t, err)
	w.as.revoke(tok) // it expires

	status, _ := w.mustGet(c, "/mcp")
	assert.Equal(t, http.StatusOK, status)
	require.Equal(t, int32(2), esc.calls.Load())
	assert.Equal(t, stepup.ReasonReauthorization, esc.requests()[1].Reason)
}

// A refresh that fails for a reason that may pass (a 503 from the token
// endpoint, a dropped connection) is retried with backoff; when it keeps
// failing, the request fails with ErrRefreshFailed and nobody is sent to a
// browser. The next request refreshes again. Only invalid_grant means the
// grant is gone (TestInvalidTokenWithoutRefreshReauthorizes).
func TestTransientRefreshFailureNeverPrompts(t *testing.T) {
	for _, tc := range []struct {
		name        string
		unavailable int32 // 503s before the token endpoint serves
		resets      int32 // dropped connections before it serves
		wantErr     bool
		wantHits    int32 // refresh requests that reached the endpoint
	}{
		{"503 twice, then served", 2, 0, false, 3},
		{"connection dropped, then served", 0, 1, false, 2},
		{"503 on every try", 100, 0, true, 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkLeaks(t)
			w := newWorld(t)
			w.protect("/files", "files:read")
			w.as.unavailable.Store(tc.unavailable)
			w.as.resets.Store(tc.resets)
			tok := w.as.issue(true, "files:read")
			w.as.revoke(tok)
			esc := newEscalator(w)
			c := &http.Client{Transport: w.transport(w.source(tok, stepup.WithEscalator(esc)))}

			if tc.wantErr {
				ce := w.mustStop(c, "/files", stepup.ErrRefreshFailed)
				assert.Equal(t, http.StatusUnauthorized, ce.Status)
				assert.NotContains(t, ce.Error(), secretMark)
			} else {
				status, _ := w.mustGet(c, "/files")
				assert.Equal(t, http.StatusOK, status)
			}
			assert.Equal(t, tc.wantHits, w.as.refreshHits.Load(), "refresh requests")
			assert.Zero(t, esc.calls.Load(), "a token endpoint hiccup prompted the user")

			if tc.wantErr {
				w.as.unavailable.Store(0) // the token endpoint is back
				status, _ := w.mustGet(c, "/files")
				assert.Equal(t, http.StatusOK, status, "the next request refreshes again")
				assert.Zero(t, esc.calls.Load())
			}
			assert.Zero(t, w.as.reuses.Load())
		})
	}
}

// The same through TokenContext, which an oauth2.Transport calls: a refresh
// failing for now is an error wrapping ErrRefreshFailed, not an expired
// token passed on.
func TestTokenContextTransientRefreshFailure(t *testing.T) {
	w := newWorld(t)
	w.as.unavailable.Store(100)
	tok := w.as.issue(true, "files:read")
	tok.Expiry = time.Now().Add(-time.Minute)
	ts := w.source(tok)

	_, err := ts.TokenContext(w.ctx())
	assert.ErrorIs(t, err, stepup.ErrRefreshFailed)
	assert.NotContains(t, err.Error(), secretMark)

	w.as.unavailable.Store(0)
	w.as.failRefresh.Store(true)
	got, err := ts.TokenContext(w.ctx())
	require.NoError(t, err, "a refused refresh token leaves the resource to decide")
	assert.Equal(t, tok.AccessToken, got.AccessToken)
	_, err = ts.Refresh(w.ctx(), tok)
	assert.ErrorIs(t, err, stepup.ErrInvalidGrant)
}

// An Escalator that chose the scopes itself, because the request named
// none, says so in Grant.Scopes: with no scope in the token response, they
// are the granted set (RFC 6749 §5.1).
func TestGrantScopesWhenEscalatorChose(t *testing.T) {
	w := newWorld(t)
	w.mux.HandleFunc("/x", func(rw http.ResponseWriter, r *http.Request) {
		if _, ok := w.check(rw, r); ok {
			fmt.Fprint(rw, "ok")
		}
	})
	var asked stepup.Scopes
	esc := stepup.EscalatorFunc(func(ctx context.Context, req *stepup.EscalationRequest) (*stepup.Grant, error) {
		asked = req.Scopes
		chosen := stepup.Scopes{"files:read", "profile"}
		r := *req
		r.Scopes = chosen
		tok, err := w.login(ctx, &r)
		if err != nil {
			return nil, err
		}
		bare := &oauth2.Token{AccessToken: tok.AccessToken, TokenType: tok.TokenType, Expiry: tok.Expiry} // no scope in the response
		return &stepup.Grant{Token: bare, Scopes: chosen}, nil
	})
	ts, err := stepup.NewTokenSource(w.resource(), nil, stepup.WithEscalator(esc))
	require.NoError(t, err)

	status, _ := w.mustGet(&http.Client{Transport: w.transport(ts)}, "/x")

	require.Equal(t, http.StatusOK, status)
	assert.Equal(t, stepup.Scopes{"files:read"}, asked, "the 401's scope")
	requested, granted := ts.Scopes()
	assert.Equal(t, stepup.Scopes{"files:read", "profile"}, requested)
	assert.Equal(t, stepup.Scopes{"files:read", "profile"}, granted)
}

// How to refresh can be learnt after the source was made: from the
// Escalator's Grant.Refresh (a client registered during the first login),
// or SetRefreshFunc, safely while requests run. The RFC 8707 resource is
// sent on such refreshes too.
func TestRefreshLearntLate(t *testing.T) {
	checkLeaks(t)
	w := newWorld(t)
	w.protect("/files", "files:read")
	esc := stepup.EscalatorFunc(func(ctx context.Context, req *stepup.EscalationRequest) (*stepup.Grant, error) {
		tok, err := w.login(ctx, req)
		if err != nil {
			return nil, err
		}
		return &stepup.Grant{Token: tok, Refresh: stepup.RefreshWithConfig(w.cfg)}, nil
	})
	ts, err := stepup.NewTokenSource(w.resource(), nil, stepup.WithEscalator(esc)) // no way to refresh yet
	require.NoError(t, err)
	c := &http.Client{Transport: w.transport(ts)}
	status, _ := w.mustGet(c, "/files")
	require.Equal(t, http.StatusOK, status)

	tok, err := ts.Token()
	require.NoError(t, err)
	w.as.revoke(tok)
	status, _ = w.mustGet(c, "/files")
	require.Equal(t, http.StatusOK, status)
	require.Equal(t, int32(1), w.as.refreshHits.Load(), "refreshed with the Escalator's RefreshFunc")
	assert.Equal(t, w.resource(), w.as.refreshForms()[0].Get("resource"))

	// SetRefreshFunc while requests refresh: no race, and every refresh
	// gets the resource.
	var resources sync.Map
	refresh := func(ctx context.Context, t *oauth2.Token, resource string) (*oauth2.Token, error) {
		resources.Store(resource, true)
		return stepup.RefreshWithConfig(w.cfg)(ctx, t, resource)
	}
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if i%2 == 0 {
				ts.SetRefreshFunc(refresh)
				return
			}
			tok, _ := ts.Token()
			_, _ = ts.Refresh(w.ctx(), tok)
		}()
	}
	wg.Wait()
	resources.Range(func(k, _ any) bool {
		assert.Equal(t, w.resource(), k)
		return true
	})
}

// The Escalator learns the issuer of the grant it builds on: the one the
// last Grant named, or the one the source was tied to.
func TestEscalationRequestIssuer(t *testing.T) {
	w := newWorld(t)
	w.protect("/write", "files:write")
	w.protect("/admin", "admin")
	var issuers []string
	esc := stepup.EscalatorFunc(func(ctx context.Context, req *stepup.EscalationRequest) (*stepup.Grant, error) {
		issuers = append(issuers, req.Issuer)
		tok, err := w.login(ctx, req)
		if err != nil {
			return nil, err
		}
		return &stepup.Grant{Token: tok, Issuer: "https://as.example/tenant"}, nil
	})
	c := &http.Client{Transport: w.transport(w.source(w.as.issue(true, "files:read"), stepup.WithIssuer("https://as.example/first"), stepup.WithEscalator(esc)))}
	for _, path := range []string{"/write", "/admin"} {
		status, _ := w.mustGet(c, path)
		require.Equal(t, http.StatusOK, status)
	}
	assert.Equal(t, []string{"https://as.example/first", "https://as.example/tenant"}, issuers)
}

// The Escalator gets a copy of the rejected token: changing it changes
// nothing in the source.
func TestRejectedTokenIsACopy(t *testing.T) {
	w := newWorld(t)
	w.protect("/write", "files:write")
	tok := w.as.issue(true, "files:read")
	esc := stepup.EscalatorFunc(func(_ context.Context, req *stepup.EscalationRequest) (*stepup.Grant, error) {
		req.RejectedToken.AccessToken = "tampered"
		return nil, stepup.ErrDeclined
	})
	ts := w.source(tok, stepup.WithEscalator(esc))
	w.mustStop(&http.Client{Transport: w.transport(ts)}, "/write", stepup.ErrDeclined)

	got, err := ts.Token()
	require.NoError(t, err)
	assert.Equal(t, tok.AccessToken, got.AccessToken)
}
