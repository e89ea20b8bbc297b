package httpretry

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-retryablehttp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stepup-go/stepup/internal/netguard"
)

// failing serves a token endpoint that fails its first request with fail
// (a status, or 0 for a connection dropped after the request was read),
// then answers 200, and counts the requests that reached it.
func failing(t *testing.T, fail int) (*httptest.Server, *atomic.Int32) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		if hits.Add(1) > 1 {
			w.Write([]byte(`{"access_token":"at","token_type":"Bearer"}`))
			return
		}
		if fail == 0 {
			conn, _, _ := w.(http.Hijacker).Hijack()
			conn.Close()
			return
		}
		w.Header().Set("Retry-After", "3600") // capped: the test would hang otherwise
		http.Error(w, "no", fail)
	}))
	t.Cleanup(srv.Close)
	return srv, &hits
}

func post(t *testing.T, url string, what Redeems) (*http.Response, error) {
	c := New(&http.Client{}, TokenPolicy(what), Max, time.Millisecond, 2*time.Millisecond)
	req, err := retryablehttp.NewRequestWithContext(context.Background(), http.MethodPost, url, strings.NewReader("grant_type=x"))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := c.Do(req)
	if err == nil {
		resp.Body.Close()
	}
	return resp, err
}

// What may be sent again depends on whether the server may have acted on
// the first request, and on what it redeems.
func TestTokenPolicy(t *testing.T) {
	for _, tc := range []struct {
		name     string
		fail     int
		what     Redeems
		wantHits int32
	}{
		{"code: 503 says not served", http.StatusServiceUnavailable, Code, 2},
		{"code: 429 says not served", http.StatusTooManyRequests, Code, 2},
		{"code: a 500 may have been served", http.StatusInternalServerError, Code, 1},
		{"code: a 502 may have been served", http.StatusBadGateway, Code, 1},
		{"code: a dropped connection may have been served", 0, Code, 1},
		{"code: 400 is refused again", http.StatusBadRequest, Code, 1},
		{"refresh: 503", http.StatusServiceUnavailable, RefreshToken, 2},
		{"refresh: 429", http.StatusTooManyRequests, RefreshToken, 2},
		{"refresh: a 500 is the same refresh token again", http.StatusInternalServerError, RefreshToken, 2},
		{"refresh: a dropped connection too", 0, RefreshToken, 2},
		{"refresh: 501 will not pass", http.StatusNotImplemented, RefreshToken, 1},
		{"refresh: 400 is refused again", http.StatusBadRequest, RefreshToken, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv, hits := failing(t, tc.fail)
			_, _ = post(t, srv.URL, tc.what)
			assert.Equal(t, tc.wantHits, hits.Load())
		})
	}
}

// A request whose connection was never made reached no server: it is
// retried, a code's too.
func TestTokenPolicyRetriesWhatNeverLeft(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	l.Close() // nothing listens there now: connections are refused

	_, err = http.Post("http://"+addr+"/token", "text/plain", nil)
	require.Error(t, err)
	for _, what := range []Redeems{Code, RefreshToken} {
		retry, err2 := TokenPolicy(what)(context.Background(), nil, err)
		assert.True(t, retry, "a refused connection")
		assert.NoError(t, err2)
	}
}

func TestTokenPolicyNeverRetries(t *testing.T) {
	for _, what := range []Redeems{Code, RefreshToken} {
		refused := &net.OpError{Op: "dial", Net: "tcp", Err: netguard.ErrRefused}
		retry, err := TokenPolicy(what)(context.Background(), nil, refused)
		assert.False(t, retry, "a target the policy refused")
		assert.ErrorIs(t, err, netguard.ErrRefused)

		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		retry, err = TokenPolicy(what)(ctx, &http.Response{StatusCode: http.StatusServiceUnavailable}, nil)
		assert.False(t, retry, "after the context ended")
		assert.ErrorIs(t, err, context.Canceled)
	}
}

func TestBackoffIsCapped(t *testing.T) {
	resp := &http.Response{StatusCode: http.StatusTooManyRequests, Header: http.Header{"Retry-After": {"3600"}}}
	assert.Equal(t, time.Second, Backoff(time.Millisecond, time.Second, 1, resp))
	assert.LessOrEqual(t, Backoff(time.Millisecond, 8*time.Millisecond, 10, nil), 8*time.Millisecond)
}
