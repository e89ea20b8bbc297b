package stepup_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"

	"github.com/stepup-go/stepup"
)

var _ oauth2.TokenSource = (*stepup.TokenSource)(nil)

// A resource is an absolute http(s) URI without fragment (RFC 8707 §2), and
// bearer tokens need TLS except on loopback (RFC 6750 §5.3).
func TestNewTokenSourceValidatesResource(t *testing.T) {
	for _, tc := range []struct {
		resource string
		ok       bool
	}{
		{"https://mcp.example.com/mcp", true},
		{"https://MCP.example.com:8443", true},
		{"http://localhost:8080/mcp", true},
		{"http://127.0.0.1/mcp", true},
		{"http://[::1]:9000/mcp", true},
		{"http://mcp.localhost/mcp", true},
		{"http://localhost.:8080/mcp", true},
		{"http://127.1/mcp", false},
		{"http://mcp.example.com/mcp", false},
		{"http://10.0.0.1/mcp", false},
		{"https://mcp.example.com/mcp#x", false},
		{"https://mcp.example.com/mcp#", false},
		{"mcp.example.com", false},
		{"/mcp", false},
		{"ftp://mcp.example.com/mcp", false},
		{"https:///mcp", false},
		{"", false},
		{"https://mcp.example.com/%zz", false},
	} {
		t.Run(tc.resource, func(t *testing.T) {
			ts, err := stepup.NewTokenSource(tc.resource, nil)
			if tc.ok {
				require.NoError(t, err)
				assert.Equal(t, tc.resource, ts.Resource())
			} else {
				assert.Error(t, err)
				assert.Nil(t, ts)
			}
		})
	}
}

// Token refreshes an expired token through the oauth2.Config, sending the
// resource (RFC 8707 §2.2) and no scope (RFC 6749 §6), and reuses the result.
func TestTokenSourceTokenRefreshesWhenExpired(t *testing.T) {
	w := newWorld(t)
	tok := w.as.issue(true, "files:read")
	tok.Expiry = time.Now().Add(-time.Minute)
	ts := w.source(tok)

	got, err := ts.TokenContext(w.ctx())
	require.NoError(t, err)
	assert.NotEqual(t, tok.AccessToken, got.AccessToken)
	assert.NotEqual(t, tok.RefreshToken, got.RefreshToken, "the server rotated it")
	assert.True(t, got.Valid())
	assert.Equal(t, int32(1), w.as.refreshHits.Load())
	f := w.as.refreshForms()[0]
	assert.Equal(t, "refresh_token", f.Get("grant_type"))
	assert.Equal(t, w.resource(), f.Get("resource"))
	assert.False(t, f.Has("scope"))

	again, err := ts.Token()
	require.NoError(t, err)
	assert.Same(t, got, again)
	assert.Equal(t, int32(1), w.as.refreshHits.Load())
}

// Twenty goroutines refreshing the same rejected token make one request to
// the token endpoint and all get its token (OAuth 2.1 §4.3.1).
func TestTokenSourceRefreshIsSingleFlight(t *testing.T) {
	checkLeaks(t)
	const n = 20
	w := newWorld(t)
	gate := make(chan struct{})
	w.as.setGate(gate)
	tok := w.as.issue(true, "files:read")
	ts := w.source(tok)

	var wg sync.WaitGroup
	got := make([]*oauth2.Token, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var err error
			got[i], err = ts.Refresh(w.ctx(), tok)
			assert.NoError(t, err)
		}()
	}
	close(gate)
	wg.Wait()

	assert.Equal(t, int32(1), w.as.refreshHits.Load())
	assert.Zero(t, w.as.reuses.Load())
	for _, g := range got {
		require.NotNil(t, g)
		assert.Equal(t, got[0].AccessToken, g.AccessToken)
	}
}

// A token newer than the rejected one is returned without a network call.
func TestTokenSourceRefreshReturnsNewerToken(t *testing.T) {
	w := newWorld(t)
	old := w.as.issue(true, "a")
	ts := w.source(old)
	newer := w.as.issue(true, "a")
	ts.Set(newer, stepup.Scopes{"a"})

	got, err := ts.Refresh(w.ctx(), old)

	require.NoError(t, err)
	assert.Equal(t, newer.AccessToken, got.AccessToken)
	assert.Zero(t, w.as.refreshHits.Load())
}

// A caller that stops waiting does not abandon the refresh: its rotated
// refresh token is installed, and a later caller gets the result without
// a second refresh (which would reuse the old refresh token).
func TestTokenSourceRefreshSurvivesCancelledCaller(t *testing.T) {
	checkLeaks(t)
	w := newWorld(t)
	gate := make(chan struct{})
	w.as.setGate(gate)
	tok := w.as.issue(true, "a")
	ts := w.source(tok)

	ctx, cancel := context.WithCancel(w.ctx())
	cancel()
	_, err := ts.Refresh(ctx, tok)
	assert.ErrorIs(t, err, context.Canceled)

	arrived := make(chan url.Values, 1)
	w.as.setArrived(arrived)
	ctx, cancel = context.WithCancel(w.ctx())
	first := make(chan error, 1)
	go func() {
		_, err := ts.Refresh(ctx, tok)
		first <- err
	}()
	form := recv(t, arrived) // the refresh is at the token endpoint, held at the gate
	cancel()
	assert.ErrorIs(t, recv(t, first), context.Canceled)

	close(gate)
	got, err := ts.Refresh(w.ctx(), tok)
	require.NoError(t, err)
	assert.NotEqual(t, tok.AccessToken, got.AccessToken)
	assert.Equal(t, int32(1), w.as.refreshHits.Load())
	assert.Zero(t, w.as.reuses.Load())
	assert.Equal(t, tok.RefreshToken, form.Get("refresh_token"))
}

// When the response omits refresh_token, the old one stays (RFC 6749 §6).
func TestTokenSourceKeepsRefreshTokenWhenOmitted(t *testing.T) {
	w := newWorld(t)
	w.as.NoRotation = true
	tok := w.as.issue(true, "a")
	ts := w.source(tok)

	got, err := ts.Refresh(w.ctx(), tok)
	require.NoError(t, err)
	assert.Equal(t, tok.RefreshToken, got.RefreshToken)

	again, err := ts.Refresh(w.ctx(), got)
	require.NoError(t, err)
	assert.NotEqual(t, got.AccessToken, again.AccessToken)
	assert.Equal(t, int32(2), w.as.refreshHits.Load())
}

// The granted scopes come from the token response's scope, else they are the
// requested ones (RFC 6749 §5.1).
func TestTokenSourceGrantedScopes(t *testing.T) {
	ts, err := stepup.NewTokenSource("https://api.example/mcp", nil, stepup.WithScopes("a", "b", "a"))
	require.NoError(t, err)
	requested, granted := ts.Scopes()
	assert.Equal(t, stepup.Scopes{"a", "b"}, requested)
	assert.Nil(t, granted)

	ts.Set((&oauth2.Token{AccessToken: "x"}).WithExtra(map[string]any{"scope": "a"}), stepup.Scopes{"a", "b"})
	requested, granted = ts.Scopes()
	assert.Equal(t, stepup.Scopes{"a", "b"}, requested)
	assert.Equal(t, stepup.Scopes{"a"}, granted, "the server granted less")

	ts.Set(&oauth2.Token{AccessToken: "y"}, stepup.Scopes{"c", "d"})
	_, granted = ts.Scopes()
	assert.Equal(t, stepup.Scopes{"c", "d"}, granted, "no scope in the response: granted = requested")

	granted[0] = "mutated"
	_, again := ts.Scopes()
	assert.Equal(t, stepup.Scopes{"c", "d"}, again, "Scopes returns copies")
}

// The granted scopes of a refreshed token come from its response; a
// response without scope keeps the grant as it was.
func TestTokenSourceRefreshKeepsOrUpdatesGrantedScopes(t *testing.T) {
	calls := 0
	refresh := func(ctx context.Context, t *oauth2.Token, _ string) (*oauth2.Token, error) {
		calls++
		if calls == 1 {
			return &oauth2.Token{AccessToken: "at-2", RefreshToken: "rt-2"}, nil
		}
		return (&oauth2.Token{AccessToken: "at-3"}).WithExtra(map[string]any{"scope": "a"}), nil
	}
	tok := (&oauth2.Token{AccessToken: "at-1", RefreshToken: "rt-1"}).WithExtra(map[string]any{"scope": "a b"})
	ts, err := stepup.NewTokenSource("https://api.example/mcp", tok, stepup.WithRefreshFunc(refresh), stepup.WithScopes("a", "b", "c"))
	require.NoError(t, err)
	_, granted := ts.Scopes()
	assert.Equal(t, stepup.Scopes{"a", "b"}, granted)

	got, err := ts.Refresh(context.Background(), tok)
	require.NoError(t, err)
	assert.Equal(t, "at-2", got.AccessToken)
	_, granted = ts.Scopes()
	assert.Equal(t, stepup.Scopes{"a", "b"}, granted)

	got, err = ts.Refresh(context.Background(), got)
	require.NoError(t, err)
	assert.Equal(t, "rt-2", got.RefreshToken, "kept when the response has none")
	requested, granted := ts.Scopes()
	assert.Equal(t, stepup.Scopes{"a"}, granted)
	assert.Equal(t, stepup.Scopes{"a", "b", "c"}, requested)
}

func TestTokenSourceWithoutTokenOrRefreshToken(t *testing.T) {
	ts, err := stepup.NewTokenSource("https://api.example/mcp", nil)
	require.NoError(t, err)
	_, err = ts.Token()
	assert.ErrorIs(t, err, stepup.ErrNoToken)
	_, err = ts.Refresh(context.Background(), nil)
	assert.ErrorIs(t, err, stepup.ErrNoRefreshToken)

	// An expired token that cannot be refreshed goes out as it is: the
	// resource's 401 then leads to a new authorization, also through an
	// oauth2.Transport using the source.
	expired := &oauth2.Token{AccessToken: "at", Expiry: time.Now().Add(-time.Hour)}
	ts.Set(expired, nil)
	got, err := ts.Token()
	require.NoError(t, err)
	assert.Same(t, expired, got)
	_, err = ts.Refresh(context.Background(), expired)
	assert.ErrorIs(t, err, stepup.ErrNoRefreshToken)

	// A refresh token but nothing to refresh with.
	withRT := &oauth2.Token{AccessToken: "at", RefreshToken: "rt", Expiry: time.Now().Add(-time.Hour)}
	ts.Set(withRT, nil)
	got, err = ts.Token()
	require.NoError(t, err)
	assert.Same(t, withRT, got)
	_, err = ts.Refresh(context.Background(), withRT)
	assert.ErrorIs(t, err, stepup.ErrNoRefreshToken)

	ts.Set(nil, nil)
	_, err = ts.Token()
	assert.ErrorIs(t, err, stepup.ErrNoToken, "Set(nil) forgets the token")
}

// A failed refresh is an error that wraps the cause, without the tokens the
// token endpoint's answer may echo.
func TestTokenSourceRefreshErrorIsRedacted(t *testing.T) {
	w := newWorld(t)
	w.as.failRefresh.Store(true)
	w.as.echoOnFailure.Store(true)
	tok := w.as.issue(true, "a")
	ts := w.source(tok)

	_, err := ts.Refresh(w.ctx(), tok)

	require.Error(t, err)
	var re *oauth2.RetrieveError
	require.ErrorAs(t, err, &re)
	assert.Equal(t, "invalid_grant", re.ErrorCode)
	assert.NotContains(t, err.Error(), secretMark)
	assert.NotContains(t, fmt.Sprintf("%+v", err), secretMark)
	assert.Contains(t, err.Error(), "[REDACTED]")

	bad := stepup.WithRefreshFunc(func(context.Context, *oauth2.Token, string) (*oauth2.Token, error) { return nil, nil })
	ts2, err := stepup.NewTokenSource(w.resource(), tok, bad)
	require.NoError(t, err)
	_, err = ts2.Refresh(w.ctx(), tok)
	assert.ErrorContains(t, err, "no access token")
}

// A panicking RefreshFunc becomes an error, not a crash.
func TestTokenSourceRefreshFuncPanics(t *testing.T) {
	checkLeaks(t)
	tok := &oauth2.Token{AccessToken: "at-" + secretMark, RefreshToken: "rt-" + secretMark}
	ts, err := stepup.NewTokenSource("https://api.example/mcp", tok, stepup.WithRefreshFunc(func(_ context.Context, t *oauth2.Token, _ string) (*oauth2.Token, error) {
		panic(errors.New("boom with " + t.RefreshToken))
	}))
	require.NoError(t, err)
	_, err = ts.Refresh(context.Background(), tok)
	assert.ErrorContains(t, err, "panicked: boom with [REDACTED]")
	assert.NotContains(t, err.Error(), secretMark)
}

// A RefreshFunc that ends its goroutine with runtime.Goexit does not leave
// callers of Refresh waiting on its flight: they get an error, and the
// next refresh runs afresh.
func TestTokenSourceRefreshFuncGoexit(t *testing.T) {
	checkLeaks(t)
	tok := &oauth2.Token{AccessToken: "at", RefreshToken: "rt"}
	var calls atomic.Int32
	ts, err := stepup.NewTokenSource("https://api.example/mcp", tok, stepup.WithRefreshFunc(func(context.Context, *oauth2.Token, string) (*oauth2.Token, error) {
		if calls.Add(1) == 1 {
			runtime.Goexit()
		}
		return &oauth2.Token{AccessToken: "at2"}, nil
	}))
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()

	_, err = ts.Refresh(ctx, tok)

	assert.ErrorContains(t, err, "Goexit")
	assert.NotErrorIs(t, err, context.DeadlineExceeded, "Refresh waited for a flight that had ended")
	got, err := ts.Refresh(ctx, tok)
	require.NoError(t, err)
	assert.Equal(t, "at2", got.AccessToken)
	assert.Equal(t, int32(2), calls.Load())
}

// A TokenSource prints without its token.
func TestTokenSourcePrintsWithoutToken(t *testing.T) {
	tok := &oauth2.Token{AccessToken: "at-" + secretMark, RefreshToken: "rt-" + secretMark}
	ts, err := stepup.NewTokenSource("https://api.example/mcp", tok, stepup.WithScopes("a"))
	require.NoError(t, err)
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("source", "ts", ts)
	//lint:ignore S1025 each verb is what is tested, %s among them
	for _, s := range []string{fmt.Sprint(ts), fmt.Sprintf("%+v", ts), fmt.Sprintf("%s", ts), buf.String()} {
		assert.NotContains(t, s, secretMark)
		assert.Contains(t, s, "api.example")
	}
}
