// Package zitadel_test runs stepup's authorization code Escalator against
// a maintained OpenID Provider, github.com/zitadel/oidc/v3's op package
// with the example storage and login UI it ships, in process on loopback:
// discovery through OpenID Connect Discovery (the provider serves no
// RFC 8414 document), a pre-registered native client on a loopback
// redirect URI of any port (RFC 8252 §7.3), the provider's own login form
// filled in by a stand-in browser, PKCE S256, a refresh token for
// offline_access, and a step-up to a scope the first token lacks.
package zitadel_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/zitadel/oidc/v3/example/server/exampleop"
	"github.com/zitadel/oidc/v3/example/server/storage"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
	"go.uber.org/goleak"

	"github.com/stepup-go/stepup"
	"github.com/stepup-go/stepup/authcode"
	"github.com/stepup-go/stepup/discovery"
)

const (
	cliClient = "stepup-cli"             // a native client: no secret, PKCE
	rsClient  = "resource-server"        // the resource server, for introspection
	rsSecret  = "resource-server-secret" //
	password  = "verysecure"             // of the example storage's test user
	loopback  = "http://127.0.0.1/callback"
)

func TestMain(m *testing.M) {
	// The example provider logs every request through slog's default.
	slog.SetDefault(slog.New(slog.NewTextHandler(io.Discard, nil)))
	goleak.VerifyTestMain(m)
}

// provider is the example storage, which additionally remembers the scopes
// of each access token so that the resource server may introspect tokens
// issued to another client (the example checks the audience, which is the
// client the token was issued to).
type provider struct {
	*storage.Storage
	mu     sync.Mutex
	scopes map[string][]string // access token ID → scopes
	tokens int                 // token endpoint grants
}

func (p *provider) record(id string, scopes []string, err error) {
	if err != nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.scopes[id] = slices.Clone(scopes)
	p.tokens++
}

func (p *provider) CreateAccessToken(ctx context.Context, req op.TokenRequest) (string, time.Time, error) {
	id, exp, err := p.Storage.CreateAccessToken(ctx, req)
	p.record(id, req.GetScopes(), err)
	return id, exp, err
}

func (p *provider) CreateAccessAndRefreshTokens(ctx context.Context, req op.TokenRequest, current string) (string, string, time.Time, error) {
	id, rt, exp, err := p.Storage.CreateAccessAndRefreshTokens(ctx, req, current)
	p.record(id, req.GetScopes(), err)
	return id, rt, exp, err
}

func (p *provider) SetIntrospectionFromToken(ctx context.Context, resp *oidc.IntrospectionResponse, tokenID, subject, clientID string) error {
	if clientID != rsClient {
		return p.Storage.SetIntrospectionFromToken(ctx, resp, tokenID, subject, clientID)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	scopes, ok := p.scopes[tokenID]
	if !ok {
		return fmt.Errorf("unknown token")
	}
	resp.Scope, resp.Subject = scopes, subject
	return nil
}

// startProvider starts the OpenID Provider on loopback.
func startProvider(t *testing.T) (*provider, string) {
	var handler http.Handler
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { handler.ServeHTTP(w, r) }))
	t.Cleanup(srv.Close)
	issuer := srv.URL
	p := &provider{
		Storage: storage.NewStorageWithClients(storage.NewUserStore(issuer), map[string]*storage.Client{
			cliClient: storage.NativeClient(cliClient, loopback),
			rsClient:  storage.WebClient(rsClient, rsSecret),
		}),
		scopes: map[string][]string{},
	}
	handler = exampleop.SetupServer(issuer, p, nil, false)
	return p, issuer
}

// resourceServer is an MCP-like protected resource whose tokens the
// provider issues: it introspects them (RFC 7662) and asks for the scope
// each operation needs (RFC 6750 §3.1, RFC 9728 §5.1).
func resourceServer(t *testing.T, issuer string) *httptest.Server {
	var srv *httptest.Server
	introspect := func(ctx context.Context, token string) ([]string, bool) {
		form := url.Values{"token": {token}}
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, issuer+"/oauth/introspect", strings.NewReader(form.Encode()))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth(rsClient, rsSecret)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return nil, false
		}
		defer resp.Body.Close()
		var ir struct {
			Active bool   `json:"active"`
			Scope  string `json:"scope"`
		}
		if json.NewDecoder(resp.Body).Decode(&ir) != nil || !ir.Active {
			return nil, false
		}
		return strings.Fields(ir.Scope), true
	}
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		meta := fmt.Sprintf(`resource_metadata="%s/.well-known/oauth-protected-resource/mcp"`, srv.URL)
		switch {
		case r.URL.Path == "/.well-known/oauth-protected-resource/mcp":
			w.Header().Set("Content-Type", "application/json")
			json.NewEncoder(w).Encode(map[string]any{"resource": srv.URL + "/mcp", "authorization_servers": []string{issuer}})
			return
		case !strings.HasPrefix(r.URL.Path, "/mcp"):
			http.NotFound(w, r)
			return
		}
		token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok {
			w.Header().Set("WWW-Authenticate", `Bearer scope="openid", `+meta)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		scopes, active := introspect(r.Context(), token)
		if !active {
			w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token", `+meta)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		if r.URL.Path == "/mcp/tools/custom" && !slices.Contains(scopes, storage.CustomScope) {
			w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer error="insufficient_scope", scope=%q, %s`, storage.CustomScope, meta))
			w.WriteHeader(http.StatusForbidden)
			return
		}
		fmt.Fprintf(w, "ok %s", r.URL.Path)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// person is the stand-in for a person at a browser: it opens the
// authorization URL, signs in on the provider's login form, and follows
// the redirect to the loopback receiver.
type person struct {
	t        *testing.T
	issuer   string
	browser  *http.Client
	logins   int
	consents []string // the scope of each authorization request
}

func (p *person) open(ctx context.Context, authURL string) error {
	u, err := url.Parse(authURL)
	require.NoError(p.t, err)
	p.consents = append(p.consents, u.Query().Get("scope"))
	resp, err := p.get(ctx, authURL)
	if err != nil {
		return err
	}
	id := resp.Request.URL.Query().Get("authRequestID")
	if resp.Request.URL.Path != "/login/username" || id == "" {
		return fmt.Errorf("expected the login form, got %s", resp.Request.URL)
	}
	p.logins++
	host := strings.Split(strings.TrimPrefix(p.issuer, "http://"), ":")[0]
	form := url.Values{"username": {"test-user@" + host}, "password": {password}, "id": {id}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.issuer+"/login/username", strings.NewReader(form.Encode()))
	require.NoError(p.t, err)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err = p.browser.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	page, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(page), "Authorization received") {
		return fmt.Errorf("sign-in ended on %s: %d %s", resp.Request.URL, resp.StatusCode, page)
	}
	return nil
}

func (p *person) get(ctx context.Context, u string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	require.NoError(p.t, err)
	resp, err := p.browser.Do(req)
	if err != nil {
		return nil, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp, nil
}

func TestStepUpAgainstZitadel(t *testing.T) {
	prov, issuer := startProvider(t)
	rs := resourceServer(t, issuer)
	jar, err := cookiejar.New(nil)
	require.NoError(t, err)
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	someone := &person{t: t, issuer: issuer, browser: &http.Client{Jar: jar, Transport: tr}}

	disc := &discovery.Client{}
	t.Cleanup(disc.CloseIdleConnections)
	ts, err := stepup.NewTokenSource(rs.URL+"/mcp", nil)
	require.NoError(t, err)
	esc := &authcode.Escalator{
		Receiver:  &authcode.Loopback{Open: someone.open},
		Client:    &authcode.Registration{ClientID: cliClient, RedirectURIs: []string{loopback}},
		Discovery: disc,
	}
	client := &http.Client{Transport: &stepup.Transport{Source: ts, Escalator: esc}}

	get := func(path string) string {
		resp, err := client.Get(rs.URL + path)
		require.NoError(t, err)
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		require.Equal(t, http.StatusOK, resp.StatusCode, "%s", body)
		return string(body)
	}

	assert.Equal(t, "ok /mcp/tools/list", get("/mcp/tools/list"))
	first, err := ts.Token()
	require.NoError(t, err)
	assert.NotEmpty(t, first.RefreshToken, "offline_access, which the provider lists, brought a refresh token")

	assert.Equal(t, "ok /mcp/tools/custom", get("/mcp/tools/custom"))
	require.Len(t, someone.consents, 2, "a login, then a step-up")
	assert.ElementsMatch(t, []string{"openid", "offline_access"}, strings.Fields(someone.consents[0]))
	assert.ElementsMatch(t, []string{"openid", "offline_access", storage.CustomScope}, strings.Fields(someone.consents[1]))
	_, granted := ts.Scopes()
	assert.Contains(t, granted, storage.CustomScope)

	// The source refreshes through the provider with the client used, and
	// the provider keeps the grant's scope.
	stepped, err := ts.Token()
	require.NoError(t, err)
	refreshed, err := ts.Refresh(context.Background(), stepped)
	require.NoError(t, err)
	assert.NotEqual(t, stepped.AccessToken, refreshed.AccessToken)
	assert.NotEqual(t, stepped.RefreshToken, refreshed.RefreshToken, "the provider rotates refresh tokens")
	assert.Equal(t, "ok /mcp/tools/custom", get("/mcp/tools/custom"))
	assert.Equal(t, 3, prov.tokens, "two codes redeemed, one refresh")
	assert.Len(t, someone.consents, 2, "no third authorization")
}
