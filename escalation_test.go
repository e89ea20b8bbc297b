package stepup

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-retryablehttp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"golang.org/x/oauth2"
)

// recvWithin receives from c, failing the test if nothing comes within a
// generous bound: a regression then shows as a failure, not a hang.
func recvWithin[T any](t *testing.T, c <-chan T) T {
	t.Helper()
	select {
	case v := <-c:
		return v
	case <-time.After(30 * time.Second):
		t.Fatal("nothing received within 30s")
		panic("unreachable")
	}
}

func TestParseScopes(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    Scopes
		wantErr bool
	}{
		{"", nil, false},
		{"   ", nil, false},
		{"a", Scopes{"a"}, false},
		{"b a", Scopes{"b", "a"}, false},             // order kept, carries no meaning (R-6750-4)
		{"  a  b a ", Scopes{"a", "b"}, false},       // duplicates and extra spaces dropped
		{"Read read", Scopes{"Read", "read"}, false}, // case-sensitive (R-6749-1)
		{"files:read mcp:*", Scopes{"files:read", "mcp:*"}, false},
		{"a\tb", nil, true}, // HTAB is not a delimiter nor a scope char
		{`a"b`, nil, true},  // R-6750-6
		{`a\b`, nil, true},
		{"a\x7fb", nil, true},
		{"caf\u00e9", nil, true},
	} {
		t.Run(fmt.Sprintf("%q", tc.in), func(t *testing.T) {
			got, err := ParseScopes(tc.in)
			if tc.wantErr {
				assert.ErrorIs(t, err, ErrMalformedChallenge)
				var pe *ParamError
				assert.ErrorAs(t, err, &pe)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
		})
	}
}

func TestScopesSetOperations(t *testing.T) {
	a := Scopes{"files:read", "profile"}
	b := Scopes{"files:write", "files:read"}

	u := a.Union(b, nil, Scopes{"admin", "profile"})
	assert.Equal(t, Scopes{"files:read", "profile", "files:write", "admin"}, u) // R-MCP-4: stable, no duplicates
	assert.Equal(t, Scopes{"files:read", "profile"}, a, "Union must not modify its receiver")
	assert.Equal(t, Scopes{}, Scopes(nil).Union())
	assert.Equal(t, Scopes{"x"}, Scopes{"x", "x"}.Union(), "Union deduplicates the receiver too")

	assert.True(t, a.Contains("profile"))
	assert.False(t, a.Contains("Profile"))
	assert.True(t, u.ContainsAll(a))
	assert.False(t, a.ContainsAll(b))
	assert.True(t, a.ContainsAll(nil))

	assert.True(t, Scopes{"b", "a"}.Equal(Scopes{"a", "b"}))
	assert.False(t, Scopes{"a", "b"}.Equal(Scopes{"a"}))
	assert.False(t, Scopes{"a", "a"}.Equal(Scopes{"a", "b"}))
	assert.True(t, Scopes(nil).Equal(Scopes{}))

	assert.Equal(t, "files:read profile", a.String())
	assert.Equal(t, "", Scopes(nil).String())

	assert.Equal(t, "a b c", Scopes{"c", "a", "b", "a"}.sortedKey())
	assert.Equal(t, Scopes{"c", "a", "b", "a"}, Scopes{"c", "a", "b", "a"}, "sortedKey must not sort in place")
}

func mustOAuth(t *testing.T, header string) OAuthChallenge {
	t.Helper()
	cs, err := ParseChallengeValues(header)
	require.NoError(t, err)
	require.Len(t, cs, 1)
	oc, err := cs[0].OAuth()
	require.NoError(t, err)
	return oc
}

// The guard's key ignores header text, parameter order, the case of names
// and error_description, and tells apart what a remedy depends on (DESIGN §3).
// Its error code is the challenge's own: a challenge without error has the
// same key whatever the Transport makes of it.
func TestChallengeKey(t *testing.T) {
	const origin = "https://mcp.example.com"
	claims := base64.StdEncoding.EncodeToString([]byte(`{"access_token":{"acrs":{"essential":true,"value":"cp1"}}}`))
	base := mustOAuth(t, `Bearer error="insufficient_scope", scope="b a", error_description="one"`)
	key := newChallengeKey(origin, &base)

	for _, same := range []string{
		`Bearer scope="a b", error="insufficient_scope"`,
		`BEARER SCOPE=" a  b ", ERROR=insufficient_scope, error_description="two", realm="x"`,
		`bearer error = "insufficient_scope" , scope="b a a"`,
	} {
		oc := mustOAuth(t, same)
		assert.Equal(t, key, newChallengeKey(origin, &oc), same)
	}
	for _, other := range []struct {
		header, origin string
	}{
		{`Bearer error="insufficient_scope", scope="a"`, origin},
		{`Bearer error="insufficient_scope", scope="a b c"`, origin},
		{`Bearer error="insufficient_scope", scope="a b"`, "https://other.example.com"},
		{`DPoP error="insufficient_scope", scope="a b"`, origin},
		{`Bearer error="insufficient_scope", scope="a b", acr_values="x"`, origin},
		{`Bearer error="insufficient_scope", scope="a b", max_age=0`, origin},
		{`Bearer error="insufficient_scope", scope="a b", claims="` + claims + `"`, origin},
		{`Bearer scope="a b"`, origin},
		{`Bearer error="invalid_token", scope="a b"`, origin},
	} {
		oc := mustOAuth(t, other.header)
		assert.NotEqual(t, key, newChallengeKey(other.origin, &oc), other.header)
	}
	// acr_values are ordered by preference: another order is another demand.
	x := mustOAuth(t, `Bearer error="insufficient_user_authentication", acr_values="a b"`)
	y := mustOAuth(t, `Bearer error="insufficient_user_authentication", acr_values="b a"`)
	assert.NotEqual(t, newChallengeKey(origin, &x), newChallengeKey(origin, &y))
	// A bare challenge keeps its empty code: a bare 401 answered with a
	// first authorization is the same challenge when it comes back.
	bare := mustOAuth(t, `Bearer realm="files"`)
	assert.Empty(t, newChallengeKey(origin, &bare).code)
}

func TestGuard(t *testing.T) {
	const ttl = time.Minute
	now := time.Now()
	k1 := challengeKey{origin: "https://a", code: ErrorInsufficientScope, scope: "admin"}
	k2 := challengeKey{origin: "https://a", code: ErrorInsufficientScope, scope: "write"}
	var g guard

	assert.Empty(t, g.blocked(k1, 1, "read", now, ttl), "unknown challenge")

	g.escalated(k1, 2, "read", now)
	assert.Empty(t, g.blocked(k1, 1, "read", now, ttl), "drawn by an older token: escalate")
	assert.NotEmpty(t, g.blocked(k1, 2, "read", now, ttl), "drawn by the token its escalation produced")
	assert.NotEmpty(t, g.blocked(k1, 3, "read", now, ttl), "spent while the grant stays")
	assert.Empty(t, g.blocked(k1, 3, "read write", now, ttl), "the grant changed")
	assert.Empty(t, g.blocked(k1, 3, "read", now.Add(ttl+time.Second), ttl), "lapsed")
	assert.Empty(t, g.blocked(k1, 3, "read", now, ttl), "a lapsed entry is gone")

	g.declined(k2, "read", now)
	assert.Equal(t, "escalation was declined", g.blocked(k2, 5, "read", now, ttl))
	assert.Empty(t, g.blocked(k2, 5, "read admin", now, ttl))
	assert.Equal(t, "escalation was declined", g.blocked(k2, 5, "read", now.Add(ttl/2), ttl))
	assert.Empty(t, g.blocked(k2, 5, "read", now.Add(ttl/2), ttl/4), "a shorter TTL applies at once")

	g.spent(k1, "read", now)
	assert.NotEmpty(t, g.blocked(k1, 9, "read", now, ttl))
}

// The guard's memory stays bounded whatever a server sends.
func TestGuardIsBounded(t *testing.T) {
	var g guard
	now := time.Now()
	for i := range 3 * maxMemos {
		g.declined(challengeKey{scope: fmt.Sprint("s", i)}, "", now.Add(time.Duration(i)))
	}
	assert.Len(t, g.memos, maxMemos)
	assert.Contains(t, g.memos, challengeKey{scope: fmt.Sprint("s", 3*maxMemos-1)}, "the newest is kept")
	assert.NotContains(t, g.memos, challengeKey{scope: "s0"}, "the oldest is dropped")
}

func TestFlightGroupSharesOneCall(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	var g flightGroup[string]
	var calls atomic.Int32
	release := make(chan struct{})
	var joined sync.WaitGroup
	const n = 50
	joined.Add(n - 1)
	started := make(chan struct{})
	start := func() func(context.Context) error {
		return func(context.Context) error {
			calls.Add(1)
			close(started)
			<-release
			return errors.New("shared")
		}
	}
	errs := make(chan error, n)
	go func() { errs <- g.do(context.Background(), "k", start, nil) }()
	recvWithin(t, started)
	for range n - 1 {
		go func() { errs <- g.do(context.Background(), "k", start, joined.Done) }()
	}
	joined.Wait() // every other caller waits on the first one's flight
	close(release)
	for range n {
		assert.EqualError(t, recvWithin(t, errs), "shared")
	}
	assert.Equal(t, int32(1), calls.Load())
	assert.Empty(t, g.flights)
}

// A leader whose context ends hands over to the waiters; when the last waiter
// leaves, the work is cancelled and the next caller starts afresh.
func TestFlightGroupHandOverAndCancel(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	var g flightGroup[string]
	started := make(chan context.Context, 2)
	release := make(chan struct{})
	start := func() func(context.Context) error {
		return func(ctx context.Context) error {
			started <- ctx
			select {
			case <-release:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}

	leaderCtx, cancelLeader := context.WithCancel(context.Background())
	leader := make(chan error, 1)
	go func() { leader <- g.do(leaderCtx, "k", start, nil) }()
	workCtx := recvWithin(t, started)

	waiterCtx, cancelWaiter := context.WithCancel(context.Background())
	joined := make(chan struct{})
	waiter := make(chan error, 1)
	go func() { waiter <- g.do(waiterCtx, "k", start, func() { close(joined) }) }()
	recvWithin(t, joined)

	cancelLeader()
	assert.ErrorIs(t, recvWithin(t, leader), context.Canceled)
	assert.NoError(t, workCtx.Err(), "a waiter remains: the work goes on")

	cancelWaiter()
	assert.ErrorIs(t, recvWithin(t, waiter), context.Canceled)
	recvWithin(t, workCtx.Done()) // nobody waits: the work is told to stop

	// The next caller does not join the dying flight.
	next := make(chan error, 1)
	go func() { next <- g.do(context.Background(), "k", start, nil) }()
	recvWithin(t, started)
	close(release)
	assert.NoError(t, recvWithin(t, next))
}

// A detached flight runs on when its callers leave, and new callers join
// it rather than start a second one beside it.
func TestFlightGroupDetached(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	g := flightGroup[int]{detachedFor: time.Minute}
	var calls atomic.Int32
	started := make(chan context.Context, 1)
	release := make(chan struct{})
	start := func() func(context.Context) error {
		return func(ctx context.Context) error {
			calls.Add(1)
			started <- ctx
			<-release
			return nil
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	first := make(chan error, 1)
	go func() { first <- g.do(ctx, 1, start, nil) }()
	workCtx := recvWithin(t, started)
	cancel()
	assert.ErrorIs(t, recvWithin(t, first), context.Canceled)
	assert.NoError(t, workCtx.Err())
	_, hasDeadline := workCtx.Deadline()
	assert.True(t, hasDeadline, "a detached flight is bounded")

	joined := make(chan struct{})
	second := make(chan error, 1)
	go func() { second <- g.do(context.Background(), 1, start, func() { close(joined) }) }()
	recvWithin(t, joined)
	close(release)
	assert.NoError(t, recvWithin(t, second))
	assert.Equal(t, int32(1), calls.Load())
}

func TestFlightGroupPanicAndCancelledCaller(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	var g flightGroup[string]
	err := g.do(context.Background(), "k", func() func(context.Context) error {
		return func(context.Context) error { panic("boom") }
	}, nil)
	assert.ErrorContains(t, err, "panic: boom")

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err = g.do(ctx, "k", func() func(context.Context) error {
		t.Error("a cancelled caller must not start a flight")
		return nil
	}, nil)
	assert.ErrorIs(t, err, context.Canceled)
}

// A function that ends its goroutine with runtime.Goexit (t.FailNow does)
// never returns, yet its flight ends: the caller and a waiter both get
// errFlightExited, and the next caller starts afresh.
func TestFlightGroupGoexit(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	var g flightGroup[string]
	started := make(chan struct{})
	joined := make(chan struct{})
	start := func() func(context.Context) error {
		return func(context.Context) error {
			close(started)
			<-joined
			runtime.Goexit()
			return nil
		}
	}
	errs := make(chan error, 2)
	go func() { errs <- g.do(context.Background(), "k", start, nil) }()
	recvWithin(t, started)
	go func() { errs <- g.do(context.Background(), "k", start, func() { close(joined) }) }()
	for range 2 {
		assert.ErrorIs(t, recvWithin(t, errs), errFlightExited)
	}
	g.mu.Lock()
	assert.Empty(t, g.flights)
	g.mu.Unlock()

	err := g.do(context.Background(), "k", func() func(context.Context) error {
		return func(context.Context) error { return nil }
	}, nil)
	assert.NoError(t, err, "the next caller starts afresh")
}

// resource_metadata is handed on only when it is safe to fetch (RFC 9728
// §7.7, R-9728-10, R-MCP-22).
func TestValidateResourceMetadata(t *testing.T) {
	public := origin{scheme: "https", host: "mcp.example.com", port: "443"}
	local := origin{scheme: "http", host: "127.0.0.1", port: "8080"}
	private := origin{scheme: "https", host: "10.1.2.3", port: "443"}
	for _, tc := range []struct {
		raw   string
		res   origin
		cross bool
		ok    bool
	}{
		{"", public, false, false},
		{"https://mcp.example.com/.well-known/oauth-protected-resource/mcp", public, false, true},
		{"https://MCP.example.com:443/.well-known/oauth-protected-resource", public, false, true},
		{"https://mcp.example.com:8443/prm", public, false, false},
		{"http://mcp.example.com/prm", public, true, false},
		{"https://auth.example.com/prm", public, false, false},
		{"https://auth.example.com/prm", public, true, true},
		{"https://user:pw@mcp.example.com/prm", public, false, false},
		{"https://mcp.example.com/prm#x", public, false, false},
		{"javascript:alert(1)", public, true, false},
		{"file:///etc/passwd", public, true, false},
		{"/relative", public, true, false},
		{"https://169.254.169.254/latest/meta-data", public, true, false},
		{"https://[fe80::1]/prm", public, true, false},
		{"https://10.0.0.1/prm", public, true, false},
		{"https://127.0.0.1/prm", public, true, false},
		{"http://localhost:9/prm", public, true, false},
		{"https://0.0.0.0/prm", public, true, false},
		{"http://127.0.0.1:8080/prm", local, false, true},
		{"http://127.0.0.1:9090/prm", local, true, true},
		{"http://localhost:9090/prm", local, true, true},
		{"https://10.1.2.4/prm", private, true, true},
		{"https://169.254.169.254/prm", private, true, false},
		{"http://[::1]:8080/prm", local, true, true},
		{"%zz", public, true, false},
		// IPv4 in inet_aton's shorthands is no name: refused whatever it
		// decodes to, and for every resource.
		{"https://0xa9fea9fe/prm", public, true, false},
		{"https://2852039166/prm", public, true, false},
		{"https://169.254.43518/prm", public, true, false},
		{"https://0251.0376.0251.0376/prm", public, true, false},
		{"https://127.1/prm", local, true, false},
		{"https://0x7f.1/prm", local, true, false},
		{"https://0X7F.0x/prm", public, true, false},
		{"https://0/prm", public, true, false},
		{"https://8.8.8.8.8/prm", public, true, false},
		{"https://cdn.example.123/prm", public, true, false},
		// A name that only starts with a number, or has hex in another
		// label, is a name.
		{"https://0xa9fea9fe.example/prm", public, true, true},
		{"https://123.example/prm", public, true, true},
		{"https://0xg/prm", public, true, true},
		// A trailing dot makes no other host of a name or an address.
		{"https://auth.example.com./prm", public, true, true},
		{"https://169.254.169.254./prm", public, true, false},
		{"https://10.0.0.1./prm", public, true, false},
		{"https://localhost./prm", public, true, false},
		{"https://app.LOCALHOST./prm", public, true, false},
		{"http://localhost.:9090/prm", local, true, true},
		{"http://127.0.0.1.:9090/prm", local, true, true},
	} {
		t.Run(tc.raw, func(t *testing.T) {
			got, why := validateResourceMetadata(tc.raw, tc.res, tc.cross)
			if tc.ok {
				assert.Equal(t, tc.raw, got)
				assert.Empty(t, why)
			} else {
				assert.Empty(t, got)
				if tc.raw != "" {
					assert.NotEmpty(t, why)
				}
			}
		})
	}
}

func TestReasonString(t *testing.T) {
	for r, want := range map[Reason]string{
		ReasonAuthorizationRequired: "authorization required",
		ReasonReauthorization:       "re-authorization",
		ReasonInsufficientScope:     "insufficient scope",
		ReasonUserAuthentication:    "user authentication",
		ReasonClaims:                "claims",
		0:                           "Reason(0)",
		99:                          "Reason(99)",
	} {
		assert.Equal(t, want, r.String())
	}
}

func TestEscalationError(t *testing.T) {
	tok := &oauth2.Token{AccessToken: "at-SECRET", RefreshToken: "rt-SECRET"}
	cause := fmt.Errorf("consent page closed with %s: %w", tok.AccessToken, ErrDeclined)
	e := &EscalationError{
		Reason:    ReasonInsufficientScope,
		Challenge: OAuthChallenge{Scheme: SchemeBearer, Error: ErrorInsufficientScope, Scope: Scopes{"files:write"}},
		Status:    http.StatusForbidden,
		msg:       redact(cause.Error(), tok),
		err:       cause,
	}
	assert.Equal(t, "stepup: insufficient scope escalation after 403 insufficient_scope: consent page closed with [REDACTED]: stepup: authorization declined", e.Error())
	assert.ErrorIs(t, e, ErrDeclined)
	assert.True(t, e.Declined())
	assert.Same(t, cause, errors.Unwrap(e))
	assert.NotContains(t, fmt.Sprintf("%#v", e), "SECRET")
	assert.NotContains(t, fmt.Sprintf("%+v", e), "SECRET")

	d1 := &EscalationError{Reason: ReasonAuthorizationRequired, Status: 401, msg: "no", err: errors.New("no")}
	assert.Equal(t, "stepup: authorization required escalation after 401 challenge: no", d1.Error())
	assert.False(t, d1.Declined())
}

func TestRedact(t *testing.T) {
	tok := &oauth2.Token{AccessToken: "AT", RefreshToken: "RT"}
	assert.Equal(t, "[REDACTED] and [REDACTED], twice [REDACTED]", redact("AT and RT, twice AT", tok, nil))
	assert.Equal(t, "nothing", redact("nothing", &oauth2.Token{}))

	plain := errors.New("plain")
	assert.Same(t, plain, redactError(plain, tok), "nothing to redact: the error as it was")
	red := redactError(fmt.Errorf("bad AT: %w", plain), tok)
	assert.Equal(t, "bad [REDACTED]: plain", red.Error())
	assert.ErrorIs(t, red, plain)
}

// CheckRetry never retries a stepup escalation error, wherever it sits in
// the chain, and leaves everything else to the wrapped policy.
func TestCheckRetry(t *testing.T) {
	ctx := context.Background()
	esc := &url.Error{Op: "Post", URL: "https://x", Err: &EscalationError{err: ErrDeclined}}
	var nextCalls int
	next := func(ctx context.Context, resp *http.Response, err error) (bool, error) {
		nextCalls++
		return true, nil
	}
	retry, err := CheckRetry(next)(ctx, nil, esc)
	assert.False(t, retry)
	assert.ErrorIs(t, err, ErrDeclined)
	assert.Zero(t, nextCalls)

	retry, err = CheckRetry(next)(ctx, nil, errors.New("connection reset"))
	assert.True(t, retry)
	assert.NoError(t, err)
	assert.Equal(t, 1, nextCalls)

	// nil means retryablehttp's default: a 503 is retried, a 403 is not.
	retry, _ = CheckRetry(nil)(ctx, &http.Response{StatusCode: http.StatusServiceUnavailable}, nil)
	assert.True(t, retry)
	retry, _ = CheckRetry(nil)(ctx, &http.Response{StatusCode: http.StatusForbidden}, nil)
	assert.False(t, retry)
	var _ retryablehttp.CheckRetry = CheckRetry(nil)
}

func TestOrigin(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		same bool
	}{
		{"https://x.example/mcp", "https://x.example/other?q=1", true},
		{"https://x.example/mcp", "HTTPS://X.EXAMPLE:443/", true},
		{"http://127.0.0.1:80/a", "http://127.0.0.1/b", true},
		{"https://x.example/mcp", "http://x.example/mcp", false},
		{"https://x.example/mcp", "https://x.example:8443/mcp", false},
		{"https://x.example/mcp", "https://y.x.example/mcp", false},
		{"https://x.example/mcp", "https://x.example.evil/mcp", false},
		{"http://[::1]:8080/", "http://[::1]:8080/x", true},
	} {
		ua, _ := url.Parse(tc.a)
		ub, _ := url.Parse(tc.b)
		oa, ok := originOf(ua)
		require.True(t, ok)
		assert.Equal(t, tc.same, oa.matches(ub), "%s vs %s", tc.a, tc.b)
	}
	assert.False(t, origin{scheme: "https", host: "x", port: "443"}.matches(nil))
	assert.Equal(t, "https://x.example", origin{"https", "x.example", "443"}.String())
	assert.Equal(t, "http://[::1]:8080", origin{"http", "::1", "8080"}.String())
}
