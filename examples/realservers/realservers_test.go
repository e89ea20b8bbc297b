// Package realservers_test runs stepup, as a new user would wire it,
// against authorization servers that nobody here wrote (see
// [realserver]): the go-sdk's MCP client over a [stepup.Transport] with an
// [authcode.Escalator] whose loopback receiver the server's scripted
// person answers, in front of an MCP server that checks the server's
// tokens. Each scenario runs with each server whose features allow it,
// on a fresh server, and counts what the server was asked.
//
// With -table FILE, the run writes the servers × scenarios table there:
//
//	go test ./examples/realservers -args -table ../../docs/real-servers.md
package realservers_test

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/stepup-go/stepup"
	"github.com/stepup-go/stepup/authcode"
	"github.com/stepup-go/stepup/discovery"
	"github.com/stepup-go/stepup/examples/internal/mcpclient"
	"github.com/stepup-go/stepup/examples/internal/mcpserver"
	"github.com/stepup-go/stepup/examples/internal/realserver"
	"github.com/stepup-go/stepup/filestore"
)

var tableFile = flag.String("table", "", "write the servers × scenarios table (markdown) to this file")

func TestMain(m *testing.M) {
	flag.Parse()
	// zitadel's example provider logs every request through slog's
	// default.
	slog.SetDefault(slog.New(slog.NewTextHandler(io.Discard, nil)))
	code := m.Run()
	if *tableFile != "" {
		if err := os.WriteFile(*tableFile, []byte(results.markdown()), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, err)
			code = 1
		}
	}
	os.Exit(code)
}

// The tools of the suite's MCP server: those of the seed scenario, and two
// that need a stronger (ToolMFA) or a recent (ToolRecent) authentication.
const (
	ToolMFA    = "read_audit_log"
	ToolRecent = "delete_notes"
)

// recent is how long ago ToolRecent lets the login be (RFC 9470 max_age):
// long enough for a login's retried call to land within it, though
// auth_time counts whole seconds.
const recent = 2 * time.Second

// concurrency is how many calls the concurrent scenarios make at once.
const concurrency = 20

// server is a kind of authorization server the scenarios run against.
type server struct {
	name string
	// start starts one for resource, with access tokens that live ttl
	// (0 for the server's default), where setsTTL.
	start   func(t *testing.T, resource string, ttl time.Duration) *realserver.Server
	setsTTL bool
}

var servers = []server{
	{"oidc-provider", func(t *testing.T, resource string, ttl time.Duration) *realserver.Server {
		return realserver.StartOIDCProvider(t, realserver.OIDCProviderOptions{Resource: resource, AccessTokenTTL: ttl})
	}, true},
	{"hydra", func(t *testing.T, resource string, ttl time.Duration) *realserver.Server {
		return realserver.StartHydra(t, realserver.HydraOptions{Resource: resource, AccessTokenTTL: ttl})
	}, true},
	{"zitadel", func(t *testing.T, resource string, _ time.Duration) *realserver.Server {
		return realserver.StartZitadel(t, realserver.ZitadelOptions{Resource: resource})
	}, false}, // the example storage's tokens live 5 minutes
}

// scenario is one behaviour checked against each server.
type scenario struct {
	id, title string
	// ttl, when set, is the access tokens' lifetime the scenario needs
	// of the server.
	ttl time.Duration
	// needs says whether a server's features allow the scenario; nil for
	// all.
	needs func(realserver.Features) bool
	run   func(t *testing.T, e *env)
}

var scenarios = []scenario{
	{"a", "first login gets a refresh token", 0, nil, firstLogin},
	{"b", "403 insufficient_scope: one consent for the union of scopes, no refresh", 0, nil, stepUpScope},
	{"c", fmt.Sprintf("%d concurrent 403s: one consent", concurrency), 0, nil, concurrentStepUp},
	{"d", fmt.Sprintf("refused token: one refresh for %d concurrent 401s, no refresh token used twice", concurrency), 0, nil, concurrentRefresh},
	{"e", "declined consent: stepup.ErrDeclined, the session still serving",
		0, func(f realserver.Features) bool { return f.Consent }, declined},
	{"f", "RFC 9470 step-up: acr_values and max_age",
		0, func(f realserver.Features) bool { return f.StepUpAuthn }, stepUpAuthn},
	{"g", "the grant survives a restart through filestore, no new login", 0, nil, restart},
	{"h", "mcp-go's client: first login with a refresh token, then a 403 step-up with no refresh", 0, nil, mcpGo},
	{"i", "partial consent without the scope challenged: stepup.ErrExhausted after one consent, no loop",
		0, func(f realserver.Features) bool { return f.PartialConsent }, partialConsent},
	{"j", fmt.Sprintf("expired token: refreshed before it is sent, one refresh for %d concurrent calls, no 401", concurrency),
		shortTTL, nil, expired},
}

// shortTTL is the access tokens' lifetime in the expiry scenario: over
// the 10 seconds before expiry from which x/oauth2, and so the source,
// take a token for expired, by the few seconds the scenario waits.
const shortTTL = 16 * time.Second

func TestRealServers(t *testing.T) {
	for _, srv := range servers {
		t.Run(srv.name, func(t *testing.T) {
			for _, sc := range scenarios {
				t.Run(sc.id, func(t *testing.T) {
					// Registered first, so run last: after the servers stopped.
					ignore := goleak.IgnoreCurrent()
					t.Cleanup(func() { goleak.VerifyNone(t, ignore) })
					if sc.ttl != 0 && !srv.setsTTL {
						results.set(srv.name, sc.id, "not supported by the server")
						t.Skip("the server's access token lifetime is fixed")
					}
					e := newEnv(t, srv, sc.ttl)
					results.server(srv.name, e.as)
					if sc.needs != nil && !sc.needs(e.as.Features) {
						results.set(srv.name, sc.id, "not supported by the server")
						t.Skipf("%s does not support this", e.as.Name)
					}
					t.Cleanup(func() {
						if !t.Failed() && !t.Skipped() {
							results.set(srv.name, sc.id, "pass")
						} else if t.Failed() {
							results.set(srv.name, sc.id, "FAIL")
						}
					})
					sc.run(t, e)
				})
			}
		})
	}
}

// env is one scenario's world: a fresh authorization server, the MCP
// server whose tokens it issues, and a client as a new user writes it.
type env struct {
	t   *testing.T
	as  *realserver.Server
	mcp *mcpserver.Server

	mu    sync.Mutex
	asked []string // the scope of each authorization URL the person opened
}

func newEnv(t *testing.T, srv server, ttl time.Duration) *env {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { _ = ln.Close() }) // also when the server's start skips
	resource := "http://" + ln.Addr().String() + "/mcp"
	e := &env{t: t, as: srv.start(t, resource, ttl)}
	e.mcp = mcpserver.NewGoSDK(mcpserver.Config{
		Issuer: e.as.Issuer, Verify: e.as.Verify, Listener: ln,
		Challenges:      mcpserver.RFC6750Challenges,
		BaseScopes:      []string{realserver.ScopeRead},
		ToolScopes:      map[string][]string{mcpserver.ToolWrite: {realserver.ScopeWrite}},
		ScopesSupported: []string{realserver.ScopeRead, realserver.ScopeWrite},
		StepUp: map[string]mcpserver.Authentication{
			ToolMFA:    {ACRs: []string{realserver.ACRMFA}},
			ToolRecent: {MaxAge: recent},
		},
	})
	t.Cleanup(e.mcp.Close)
	require.Equal(t, resource, e.mcp.URL)
	return e
}

// browser is the person: it records what it was asked, then lets the
// server's scripted person answer.
func (e *env) browser(ctx context.Context, authURL string) error {
	u, err := url.Parse(authURL)
	if err != nil {
		return err
	}
	e.mu.Lock()
	e.asked = append(e.asked, u.Query().Get("scope"))
	e.mu.Unlock()
	return e.as.Browser(ctx, authURL)
}

// consents returns the scopes of the authorization requests so far: as
// the server's counter saw them, pushed (RFC 9126) or not, where it
// records them, else as the authorization URLs had them.
func (e *env) consents() []string {
	if r := e.as.Counts().Requested; r != nil {
		return r
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]string(nil), e.asked...)
}

// client is what a new user writes: a token source (kept in store when
// not nil), an authcode.Escalator with a loopback receiver, a
// stepup.Transport, and the go-sdk's MCP client over it.
type client struct {
	ts      *stepup.TokenSource
	session mcpclient.Session
}

func (e *env) connect(store stepup.Store) *client {
	return e.connectWith(mcpclient.GoSDK, store)
}

// connectWith is connect with the MCP client of sdk.
func (e *env) connectWith(sdk mcpclient.SDK, store stepup.Store) *client {
	t := e.t
	var opts []stepup.TokenSourceOption
	if store != nil {
		opts = append(opts, stepup.WithStore(store))
	}
	disc := &discovery.Client{}
	t.Cleanup(disc.CloseIdleConnections)
	// Client is nil where the server registers clients dynamically.
	esc := &authcode.Escalator{Receiver: &authcode.Loopback{Open: e.browser}, Client: e.as.Client, Discovery: disc}
	base := &http.Transport{}
	t.Cleanup(base.CloseIdleConnections)
	ts, err := stepup.NewTokenSource(e.mcp.URL, nil, append(opts, stepup.WithEscalator(esc))...)
	require.NoError(t, err)
	hc := &http.Client{Transport: &stepup.Transport{Base: base, Source: ts}}
	var copts mcpclient.Options
	if sdk == mcpclient.MCPGo {
		copts.ProtocolVersion = mcpclient.Legacy // see mcpclient.Options
	}
	session, err := mcpclient.Connect(context.Background(), sdk, e.mcp.URL, hc, copts)
	require.NoError(t, err)
	t.Cleanup(func() { _ = session.Close() })
	return &client{ts: ts, session: session}
}

// call calls a tool and requires it to answer.
func (c *client) call(t *testing.T, tool string) string {
	t.Helper()
	var args map[string]any
	if tool == mcpserver.ToolWrite {
		args = map[string]any{"text": "hello"}
	}
	out, err := c.session.CallTool(context.Background(), tool, args)
	require.NoError(t, err, "tool %s", tool)
	return out
}

func firstLogin(t *testing.T, e *env) {
	c := e.connect(nil)
	c.call(t, mcpserver.ToolRead)
	tok, err := c.ts.Token()
	require.NoError(t, err)
	assert.NotEmpty(t, tok.RefreshToken, "offline_access brought a refresh token")
	info, err := e.as.Verify(context.Background(), tok.AccessToken)
	require.NoError(t, err)
	assert.Contains(t, info.Scopes, realserver.ScopeRead)
	n := e.as.Counts()
	assert.Equal(t, 1, n.Authorizations, "one login")
	assert.Equal(t, 1, n.Grants["authorization_code"])
	assert.Zero(t, n.Grants["refresh_token"])
	assert.Len(t, e.consents(), 1)
}

func stepUpScope(t *testing.T, e *env) {
	c := e.connect(nil)
	c.call(t, mcpserver.ToolRead)
	before := e.as.Counts()
	assert.Equal(t, "saved: hello", c.call(t, mcpserver.ToolWrite))
	after := e.as.Counts()
	assert.Equal(t, before.Authorizations+1, after.Authorizations, "one consent for the step-up")
	assert.Equal(t, before.Grants["refresh_token"], after.Grants["refresh_token"], "no refresh request on a 403")
	asked := e.consents()
	require.Len(t, asked, 2)
	assert.Subset(t, strings.Fields(asked[1]), []string{realserver.ScopeRead, realserver.ScopeWrite, realserver.ScopeOffline},
		"the step-up asks for what was asked and granted, and the scope challenged")
	_, granted := c.ts.Scopes()
	assert.Contains(t, granted, realserver.ScopeWrite)
	tok, err := c.ts.Token()
	require.NoError(t, err)
	assert.NotEmpty(t, tok.RefreshToken, "the step-up kept offline access")
	c.call(t, mcpserver.ToolRead)
	assert.Equal(t, after.Authorizations, e.as.Counts().Authorizations)
}

func concurrentStepUp(t *testing.T, e *env) {
	c := e.connect(nil)
	c.call(t, mcpserver.ToolRead)
	before := e.as.Counts()
	parallel(t, func() error {
		_, err := c.session.CallTool(context.Background(), mcpserver.ToolWrite, map[string]any{"text": "x"})
		return err
	})
	after := e.as.Counts()
	assert.Equal(t, before.Authorizations+1, after.Authorizations, "one consent for all")
	assert.Equal(t, before.Grants["refresh_token"], after.Grants["refresh_token"], "no refresh request on a 403")
}

// concurrentRefresh: the resource refuses the access token the client
// holds (a token altered, which fails the signature check of a JWT or is
// unknown to introspection: the one way to have every server's resource
// server refuse a token the client thinks good, as after a revocation
// that the server's JWTs cannot show), and concurrent calls get one
// refresh, with the real refresh token, never used twice: with rotation
// and reuse detection, a second use would revoke the grant.
func concurrentRefresh(t *testing.T, e *env) {
	ctx := context.Background()
	c := e.connect(nil)
	c.call(t, mcpserver.ToolRead)
	tok, err := c.ts.Token()
	require.NoError(t, err)
	require.NotEmpty(t, tok.RefreshToken)
	refused := *tok
	refused.AccessToken = tamper(tok.AccessToken)
	_, err = e.as.Verify(ctx, refused.AccessToken)
	require.Error(t, err, "the resource refuses the token")
	_, requested := c.ts.Scopes()
	c.ts.Set(&refused, requested)

	before := e.as.Counts()
	parallel(t, func() error {
		_, err := c.session.CallTool(ctx, mcpserver.ToolRead, nil)
		return err
	})
	after := e.as.Counts()
	assert.Equal(t, before.Grants["refresh_token"]+1, after.Grants["refresh_token"], "one refresh for all")
	assert.Equal(t, before.Authorizations, after.Authorizations, "no new login")

	// The rotated refresh token still works: no refresh token was used
	// twice, which would have revoked the grant.
	now, err := c.ts.Token()
	require.NoError(t, err)
	if e.as.Features.RefreshRotation {
		assert.NotEqual(t, tok.RefreshToken, now.RefreshToken, "rotated")
	}
	// Expired here, it is refreshed with that refresh token.
	expired := *now
	expired.Expiry = time.Now().Add(-time.Minute)
	c.ts.Set(&expired, requested)
	next, err := c.ts.TokenContext(ctx)
	require.NoError(t, err, "the grant stands")
	require.NotEqual(t, now.AccessToken, next.AccessToken, "refreshed")
	_, err = e.as.Verify(ctx, next.AccessToken)
	require.NoError(t, err)
}

// tamper returns token with a character near its end changed: a JWT
// whose signature no longer verifies, an opaque token the server never
// issued. Not the last character, whose low bits base64 may ignore.
func tamper(token string) string {
	i := len(token) - 8
	repl := byte('A')
	if token[i] == 'A' {
		repl = 'B'
	}
	return token[:i] + string(repl) + token[i+1:]
}

func declined(t *testing.T, e *env) {
	c := e.connect(nil)
	c.call(t, mcpserver.ToolRead)
	e.as.Decide(realserver.Decision{Decline: true})
	_, err := c.session.CallTool(context.Background(), mcpserver.ToolWrite, map[string]any{"text": "x"})
	require.Error(t, err)
	assert.ErrorIs(t, err, stepup.ErrDeclined)
	e.as.Decide(realserver.Decision{})
	c.call(t, mcpserver.ToolRead)
	assert.Equal(t, 2, e.as.Counts().Authorizations, "the login and the declined step-up")
}

func stepUpAuthn(t *testing.T, e *env) {
	c := e.connect(nil)
	c.call(t, mcpserver.ToolRead)
	before := e.as.Counts()
	e.as.Decide(realserver.Decision{ACR: realserver.ACRMFA})
	assert.Equal(t, "ok: "+ToolMFA, c.call(t, ToolMFA))
	assert.Equal(t, before.Authorizations+1, e.as.Counts().Authorizations)
	tok, err := c.ts.Token()
	require.NoError(t, err)
	info, err := e.as.Verify(context.Background(), tok.AccessToken)
	require.NoError(t, err)
	assert.Equal(t, realserver.ACRMFA, info.ACR)
	assert.Equal(t, "ok: "+ToolRecent, c.call(t, ToolRecent), "the login was recent")
	c.call(t, mcpserver.ToolRead)
	assert.Equal(t, before.Authorizations+1, e.as.Counts().Authorizations)

	// Once the login is older than ToolRecent allows, its 401 max_age
	// brings one login again. What is awaited is the clock, not another
	// goroutine.
	time.Sleep(time.Until(info.AuthTime.Add(recent + time.Second)))
	assert.Equal(t, "ok: "+ToolRecent, c.call(t, ToolRecent))
	assert.Equal(t, before.Authorizations+2, e.as.Counts().Authorizations, "one login for max_age")
	tok, err = c.ts.Token()
	require.NoError(t, err)
	again, err := e.as.Verify(context.Background(), tok.AccessToken)
	require.NoError(t, err)
	assert.True(t, again.AuthTime.After(info.AuthTime), "a new login")
}

func partialConsent(t *testing.T, e *env) {
	c := e.connect(nil)
	c.call(t, mcpserver.ToolRead)
	before := e.as.Counts()
	// The person consents to all but mcp:write, the scope the 403 asked
	// for: the token still lacks it, and the 403 comes back.
	e.as.Decide(realserver.Decision{Grant: []string{realserver.ScopeOpenID, realserver.ScopeOffline, realserver.ScopeRead}})
	_, err := c.session.CallTool(context.Background(), mcpserver.ToolWrite, map[string]any{"text": "x"})
	require.Error(t, err)
	assert.ErrorIs(t, err, stepup.ErrExhausted)
	after := e.as.Counts()
	assert.Equal(t, before.Authorizations+1, after.Authorizations, "one consent, not one per 403")
	assert.Equal(t, before.Grants["refresh_token"], after.Grants["refresh_token"], "no refresh request on a 403")
	_, granted := c.ts.Scopes()
	assert.NotContains(t, granted, realserver.ScopeWrite)
	e.as.Decide(realserver.Decision{})
	c.call(t, mcpserver.ToolRead)
}

func mcpGo(t *testing.T, e *env) {
	c := e.connectWith(mcpclient.MCPGo, nil)
	c.call(t, mcpserver.ToolRead)
	tok, err := c.ts.Token()
	require.NoError(t, err)
	assert.NotEmpty(t, tok.RefreshToken)
	assert.Equal(t, "saved: hello", c.call(t, mcpserver.ToolWrite))
	n := e.as.Counts()
	assert.Equal(t, 2, n.Authorizations, "the login and the step-up")
	assert.Equal(t, 2, n.Grants["authorization_code"])
	assert.Zero(t, n.Grants["refresh_token"], "no refresh request on a 403")
}

// expired: once the source takes its token for expired, concurrent calls
// share one refresh made before any of them is sent; the resource sees no
// expired token.
func expired(t *testing.T, e *env) {
	c := e.connect(nil)
	c.call(t, mcpserver.ToolRead)
	tok, err := c.ts.Token()
	require.NoError(t, err)
	require.True(t, tok.Valid(), "the first token is good for a few seconds")
	before, refused := e.as.Counts(), e.mcp.Counts().Unauthorized
	// What is awaited is the clock: x/oauth2 takes a token for expired
	// 10 seconds before its expiry.
	time.Sleep(time.Until(tok.Expiry.Add(-10*time.Second + 100*time.Millisecond)))
	require.False(t, tok.Valid())
	parallel(t, func() error {
		_, err := c.session.CallTool(context.Background(), mcpserver.ToolRead, nil)
		return err
	})
	after := e.as.Counts()
	assert.Equal(t, before.Grants["refresh_token"]+1, after.Grants["refresh_token"], "one refresh for all")
	assert.Equal(t, before.Authorizations, after.Authorizations, "no new login")
	assert.Equal(t, refused, e.mcp.Counts().Unauthorized, "no call went out with the expired token")
	now, err := c.ts.Token()
	require.NoError(t, err)
	assert.NotEqual(t, tok.AccessToken, now.AccessToken)
}

func restart(t *testing.T, e *env) {
	store, err := filestore.New(filestore.WithDir(filepath.Join(t.TempDir(), "tokens")))
	require.NoError(t, err)
	first := e.connect(store)
	first.call(t, mcpserver.ToolRead)
	saved, err := first.ts.Token()
	require.NoError(t, err)
	logins := e.as.Counts().Authorizations

	second := e.connect(store)
	second.call(t, mcpserver.ToolRead)
	tok, err := second.ts.Token()
	require.NoError(t, err)
	assert.Equal(t, saved.AccessToken, tok.AccessToken, "the saved grant")
	assert.Equal(t, logins, e.as.Counts().Authorizations, "no new login")
}

// parallel runs f concurrency times at once and requires every run to
// succeed.
func parallel(t *testing.T, f func() error) {
	t.Helper()
	parallelN(t, concurrency, f)
}

// parallelN is parallel with n calls.
func parallelN(t *testing.T, n int, f func() error) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make([]error, n)
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			errs[i] = f()
		}()
	}
	close(start)
	wg.Wait()
	require.NoError(t, errors.Join(errs...))
}
