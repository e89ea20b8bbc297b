package roundtrip

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stepup-go/stepup"
	"go.uber.org/goleak"
	"golang.org/x/oauth2"
)

// stormSize is how many goroutines each storm releases at once, one
// request each.
const stormSize = 1000

// stormKind is one kind of storm: the challenge the resource server sends
// until the request carries a token of the kind that remedies it.
type stormKind struct {
	name      string
	status    int
	challenge string
	// accepted is the prefix of the access tokens the resource takes:
	// those the remedy (escalation or refresh) issues.
	accepted string

	wantEscalations, wantRefreshes int64
}

var stormKinds = []stormKind{
	{
		name:            "403",
		status:          http.StatusForbidden,
		challenge:       `Bearer error="insufficient_scope", scope="files:read files:write", error_description="files:write needed"`,
		accepted:        "escalated-",
		wantEscalations: 1,
		wantRefreshes:   0, // a refresh cannot widen scope: it must not be tried
	},
	{
		name:            "401",
		status:          http.StatusUnauthorized,
		challenge:       `Bearer error="invalid_token", error_description="The access token expired"`,
		accepted:        "refreshed-",
		wantEscalations: 0,
		wantRefreshes:   1,
	},
}

// stormRig is what outlives one storm: the resource server, the token
// endpoint and the client's connection pool. The pool stays warm between
// storms, so that a storm measures stepup and the server, not 1,000 TCP
// handshakes, and so that repeated storms do not churn through ephemeral
// ports.
type stormRig struct {
	kind     stormKind
	resource *httptest.Server
	tokenEP  *httptest.Server
	base     *http.Transport // to the resource
	tokenTr  *http.Transport // to the token endpoint
	ctx      context.Context // carries the client x/oauth2 refreshes with
	config   *oauth2.Config

	served      atomic.Int64 // requests the resource answered
	refreshes   atomic.Int64 // refresh_token grants the token endpoint answered
	escalations atomic.Int64 // Escalator calls
	storms      atomic.Int64 // numbers the initial tokens

	// gate is the current storm's: closed once every request of the
	// storm has been answered, challenge and all. The token endpoint
	// waits for it; storms run one at a time.
	gate atomic.Pointer[chan struct{}]
	// stop is closed at cleanup, so that a handler still waiting on a
	// gate cannot keep the server from closing.
	stop chan struct{}
}

// newStormRig starts the servers; tb's cleanup stops them and closes every
// connection, so that goleak sees no goroutine of theirs.
func newStormRig(tb testing.TB, kind stormKind) *stormRig {
	r := &stormRig{kind: kind, stop: make(chan struct{})}

	r.resource = httptest.NewServer(http.HandlerFunc(r.serveResource))
	r.tokenEP = httptest.NewServer(http.HandlerFunc(r.serveToken))

	// 1,000 requests in flight open up to 1,000 connections: keep them all
	// idle for the next storm (the default of 2 would close 998 each
	// storm). Nothing caps the connections: 1,000 of them take about 2,000
	// file descriptors in this process (Go raises the soft limit to the
	// hard one), the kernel's accept queue (somaxconn, 4096 on current
	// Linux) holds the burst, and a cap would queue requests in the pool,
	// turning the storm into a trickle.
	r.base = &http.Transport{
		MaxIdleConns:        stormSize,
		MaxIdleConnsPerHost: stormSize,
		IdleConnTimeout:     time.Minute,
	}
	r.tokenTr = &http.Transport{}
	// x/oauth2 takes its HTTP client from the context; without one it
	// would use http.DefaultClient, whose connections outlive the test.
	r.ctx = context.WithValue(context.Background(), oauth2.HTTPClient, &http.Client{Transport: r.tokenTr})
	r.config = &oauth2.Config{
		ClientID: "storm-client",
		Endpoint: oauth2.Endpoint{
			TokenURL: r.tokenEP.URL + "/token",
			// No auto-detection: it may send a second request.
			AuthStyle: oauth2.AuthStyleInParams,
		},
	}

	tb.Cleanup(func() {
		close(r.stop)
		r.base.CloseIdleConnections()
		r.tokenTr.CloseIdleConnections()
		r.resource.Close()
		r.tokenEP.Close()
	})
	return r
}

func (r *stormRig) serveResource(w http.ResponseWriter, req *http.Request) {
	r.served.Add(1)
	if strings.HasPrefix(req.Header.Get("Authorization"), "Bearer "+r.kind.accepted) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"ok":true}`)
		return
	}
	w.Header().Set("WWW-Authenticate", r.kind.challenge)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(r.kind.status)
	io.WriteString(w, `{"error":"challenged"}`)
}

func (r *stormRig) serveToken(w http.ResponseWriter, req *http.Request) {
	if req.Method != http.MethodPost || req.ParseForm() != nil || req.PostForm.Get("grant_type") != "refresh_token" {
		http.Error(w, `{"error":"invalid_request"}`, http.StatusBadRequest)
		return
	}
	n := r.refreshes.Add(1)
	if gate := r.gate.Load(); gate != nil {
		select {
		case <-*gate:
		case <-r.stop:
			http.Error(w, `{"error":"temporarily_unavailable"}`, http.StatusServiceUnavailable)
			return
		}
	}
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, `{"access_token":"refreshed-%d","token_type":"Bearer","expires_in":3600,"refresh_token":"rt-refreshed-%d"}`, n, n)
}

// stormResult is what one storm did.
type stormResult struct {
	escalations, refreshes, served int64
	failed                         int64
	firstErr                       error
	elapsed                        time.Duration // release to last response read
}

// storm releases stormSize goroutines at once, each sending one GET through
// one stepup.Transport made for this storm from a fresh TokenSource, and
// waits for all of them.
func (r *stormRig) storm(tb testing.TB) stormResult {
	n := r.storms.Add(1)
	// The initial token is valid and refreshable, on both kinds: a 403
	// must not be answered with a refresh even when one is possible, and a
	// 401 must be, rather than with an escalation.
	initial := &oauth2.Token{
		AccessToken:  fmt.Sprintf("initial-%d", n),
		RefreshToken: fmt.Sprintf("rt-initial-%d", n),
		TokenType:    "Bearer",
		Expiry:       time.Now().Add(time.Hour),
	}
	// The remedy, escalation or refresh, is held until every request of
	// the storm has had its answer: a real one takes at least a round
	// trip to the authorization server, a user's consent at worst, and
	// the whole storm piles up on it meanwhile. Holding it makes that
	// worst case certain rather than a matter of scheduling, without a
	// sleep. No remedy, no new token: every first send draws the challenge.
	gate := make(chan struct{})
	r.gate.Store(&gate)
	escalator := stepup.EscalatorFunc(func(ctx context.Context, er *stepup.EscalationRequest) (*stepup.Grant, error) {
		e := r.escalations.Add(1)
		select {
		case <-gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		return &stepup.Grant{Token: &oauth2.Token{
			AccessToken: fmt.Sprintf("escalated-%d", e),
			TokenType:   "Bearer",
			Expiry:      time.Now().Add(time.Hour),
		}}, nil
	})
	ts, err := stepup.NewTokenSource(r.resource.URL+"/", initial,
		stepup.WithOAuth2Config(r.config), stepup.WithScopes("files:read"), stepup.WithEscalator(escalator))
	if err != nil {
		tb.Fatal(err)
	}
	client := &http.Client{Transport: &stepup.Transport{
		Base:   &gatingBase{base: r.base, gate: gate},
		Source: ts,
	}}

	escalations0, refreshes0, served0 := r.escalations.Load(), r.refreshes.Load(), r.served.Load()

	var (
		ready, done sync.WaitGroup
		release     = make(chan struct{})
		failed      atomic.Int64
		errOnce     sync.Once
		firstErr    error
	)
	fail := func(err error) {
		failed.Add(1)
		errOnce.Do(func() { firstErr = err })
	}
	url := r.resource.URL + "/mcp"
	ready.Add(stormSize)
	done.Add(stormSize)
	for range stormSize {
		go func() {
			defer done.Done()
			req, err := http.NewRequestWithContext(r.ctx, http.MethodGet, url, nil)
			ready.Done()
			if err != nil {
				fail(err)
				return
			}
			<-release
			resp, err := client.Do(req)
			if err != nil {
				fail(err)
				return
			}
			_, err = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			switch {
			case err != nil:
				fail(err)
			case resp.StatusCode != http.StatusOK:
				fail(errors.New(resp.Status))
			}
		}()
	}
	// Every goroutine has its request and waits on release: closing it
	// lets them all go at once.
	ready.Wait()
	start := time.Now()
	close(release)
	done.Wait()
	elapsed := time.Since(start)

	return stormResult{
		escalations: r.escalations.Load() - escalations0,
		refreshes:   r.refreshes.Load() - refreshes0,
		served:      r.served.Load() - served0,
		failed:      failed.Load(),
		firstErr:    firstErr,
		elapsed:     elapsed,
	}
}

// gatingBase closes gate when the stormSize-th request has had its answer
// (or its error) from base. Until the remedy has run, those are exactly the
// storm's first sends.
type gatingBase struct {
	base http.RoundTripper
	sent atomic.Int64
	gate chan struct{}
}

func (g *gatingBase) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := g.base.RoundTrip(req)
	if g.sent.Add(1) == stormSize {
		close(g.gate)
	}
	return resp, err
}

// BenchmarkStorm reports, per storm of stormSize concurrent requests, how
// many escalations and refreshes stepup made, how many requests reached
// the server, and how long the storm took to clear.
func BenchmarkStorm(b *testing.B) {
	for _, kind := range stormKinds {
		b.Run("status="+kind.name, func(b *testing.B) {
			rig := newStormRig(b, kind)
			// One storm untimed: it dials the pool's connections, which
			// later storms reuse.
			if r := rig.storm(b); r.failed > 0 {
				b.Fatalf("warm-up storm: %d of %d requests failed, first: %v", r.failed, stormSize, r.firstErr)
			}
			var escalations, refreshes, served int64
			var elapsed time.Duration
			for b.Loop() {
				r := rig.storm(b)
				if r.failed > 0 {
					b.Fatalf("%d of %d requests failed, first: %v", r.failed, stormSize, r.firstErr)
				}
				escalations += r.escalations
				refreshes += r.refreshes
				served += r.served
				elapsed += r.elapsed
			}
			n := float64(b.N)
			b.ReportMetric(float64(escalations)/n, "escalations/op")
			b.ReportMetric(float64(refreshes)/n, "refreshes/op")
			b.ReportMetric(float64(served)/n, "requests/op")
			b.ReportMetric(float64(elapsed.Microseconds())/1e3/n, "ms-to-all-done/op")
		})
	}
}

// TestStorm runs one storm of each kind and checks that stepup remedied
// each with exactly one escalation or one refresh, shared by all 1,000
// requests, and that every request succeeded.
func TestStorm(t *testing.T) {
	defer goleak.VerifyNone(t)
	for _, kind := range stormKinds {
		// A subtest, so that the rig's cleanup has closed every connection
		// before goleak looks.
		t.Run(kind.name, func(t *testing.T) {
			r := newStormRig(t, kind).storm(t)
			t.Logf("%s storm: %d escalations, %d refreshes, %d requests served, all done in %v",
				kind.name, r.escalations, r.refreshes, r.served, r.elapsed)
			if r.failed > 0 {
				t.Errorf("%d of %d requests failed, first: %v", r.failed, stormSize, r.firstErr)
			}
			if r.escalations != kind.wantEscalations {
				t.Errorf("escalations = %d, want %d", r.escalations, kind.wantEscalations)
			}
			if r.refreshes != kind.wantRefreshes {
				t.Errorf("refreshes = %d, want %d", r.refreshes, kind.wantRefreshes)
			}
			// Each request goes out once, and at most once more after the
			// remedy.
			if r.served < stormSize || r.served > 2*stormSize {
				t.Errorf("the resource served %d requests, want between %d and %d", r.served, stormSize, 2*stormSize)
			}
		})
	}
}
