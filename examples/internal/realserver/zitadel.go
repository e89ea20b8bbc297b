package realserver

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/zitadel/oidc/v3/example/server/exampleop"
	"github.com/zitadel/oidc/v3/example/server/storage"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"

	"github.com/stepup-go/stepup/authcode"
)

// The clients of [StartZitadel]'s provider, registered beforehand: it has
// no dynamic registration.
const (
	// ZitadelClient is the native client the person's client uses: no
	// secret, PKCE, loopback redirect URIs of any port (RFC 8252 §7.3).
	ZitadelClient = "stepup-cli"
	zitadelRS     = "resource-server" // the resource server, for introspection (RFC 7662)
	zitadelRSKey  = "resource-server-secret"
	zitadelPass   = "verysecure" // of the example storage's test user
	zitadelLoop   = "http://127.0.0.1/callback"
)

// ZitadelOIDCVersion is the version of github.com/zitadel/oidc/v3 that
// examples/go.mod requires (a test checks), for the server's name: test
// binaries carry no module versions to read.
const ZitadelOIDCVersion = "v3.52.0"

// ZitadelOptions configures [StartZitadel].
type ZitadelOptions struct {
	// Resource is the URL of the resource server whose tokens the
	// provider issues. Required. The provider knows no resource
	// indicators: its tokens are good at any resource server that
	// introspects them.
	Resource string
}

// StartZitadel starts zitadel's OpenID Provider (github.com/zitadel/oidc's
// op package) in the process on loopback, with the example storage and
// login UI it ships: a pre-registered native client [ZitadelClient]
// (Server.Client), the example's test user at its login form, opaque
// access tokens that the resource server introspects, rotated refresh
// tokens for offline_access. It stops when t ends.
func StartZitadel(t testing.TB, opts ZitadelOptions) *Server {
	t.Helper()
	if opts.Resource == "" {
		t.Fatal("realserver: ZitadelOptions.Resource is required")
	}
	count := newCounter("/auth", "", "/oauth/token", "")
	var handler http.Handler
	srv := httptest.NewServer(count.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { handler.ServeHTTP(w, r) })))
	t.Cleanup(srv.Close)
	issuer := srv.URL
	store := &zitadelStorage{
		Storage: storage.NewStorageWithClients(storage.NewUserStore(issuer), map[string]*storage.Client{
			ZitadelClient: storage.NativeClient(ZitadelClient, zitadelLoop),
			zitadelRS:     storage.WebClient(zitadelRS, zitadelRSKey),
		}),
		tokens: map[string]zitadelToken{},
	}
	handler = exampleop.SetupServer(issuer, store, nil, false)

	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	hc := &http.Client{Transport: tr}
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	p := &zitadelPerson{issuer: issuer, browser: &http.Client{Jar: jar, Transport: tr}}
	return &Server{
		Name:     "zitadel/oidc op " + ZitadelOIDCVersion + " (example storage)",
		Issuer:   issuer,
		Resource: opts.Resource,
		Client:   &authcode.Registration{Issuer: issuer, ClientID: ZitadelClient, RedirectURIs: []string{zitadelLoop}},
		Features: Features{Revocation: true},
		Browser:  p.browse,
		Decide:   func(Decision) {}, // the example login has no consent page and one ACR
		Verify: func(ctx context.Context, token string) (*TokenInfo, error) {
			return introspect(ctx, hc, issuer+"/oauth/introspect", token, zitadelRS, zitadelRSKey)
		},
		Revoke: func(ctx context.Context, token string) error {
			return revoke(ctx, hc, issuer+"/revoke", token, ZitadelClient, "")
		},
		Counts: count.counts,
	}
}

// zitadelStorage is the example storage, which additionally remembers the
// scopes of each access token so that the resource server may introspect
// tokens issued to another client (the example's introspection answers
// only the client the token was issued to).
type zitadelStorage struct {
	*storage.Storage
	mu     sync.Mutex
	tokens map[string]zitadelToken // access token ID → what introspection says
}

type zitadelToken struct {
	scopes  []string
	expires time.Time
}

// GetClientByClientID returns the client, which may also be granted the
// resource's scopes: the example's clients allow only its custom_scope.
func (s *zitadelStorage) GetClientByClientID(ctx context.Context, id string) (op.Client, error) {
	c, err := s.Storage.GetClientByClientID(ctx, id)
	if err != nil {
		return nil, err
	}
	return resourceScopesAllowed{c}, nil
}

type resourceScopesAllowed struct{ op.Client }

func (c resourceScopesAllowed) IsScopeAllowed(scope string) bool {
	return scope == ScopeRead || scope == ScopeWrite || c.Client.IsScopeAllowed(scope)
}

func (s *zitadelStorage) record(id string, scopes []string, exp time.Time, err error) {
	if err != nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tokens[id] = zitadelToken{scopes: slices.Clone(scopes), expires: exp}
}

func (s *zitadelStorage) CreateAccessToken(ctx context.Context, req op.TokenRequest) (string, time.Time, error) {
	id, exp, err := s.Storage.CreateAccessToken(ctx, req)
	s.record(id, req.GetScopes(), exp, err)
	return id, exp, err
}

func (s *zitadelStorage) CreateAccessAndRefreshTokens(ctx context.Context, req op.TokenRequest, current string) (string, string, time.Time, error) {
	id, rt, exp, err := s.Storage.CreateAccessAndRefreshTokens(ctx, req, current)
	s.record(id, req.GetScopes(), exp, err)
	return id, rt, exp, err
}

func (s *zitadelStorage) SetIntrospectionFromToken(ctx context.Context, resp *oidc.IntrospectionResponse, tokenID, subject, clientID string) error {
	if clientID != zitadelRS {
		return s.Storage.SetIntrospectionFromToken(ctx, resp, tokenID, subject, clientID)
	}
	// The example's userinfo lookup says whether the token is still
	// there (not revoked) and unexpired.
	if err := s.Storage.SetUserinfoFromToken(ctx, new(oidc.UserInfo), tokenID, subject, ""); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	tok, ok := s.tokens[tokenID]
	if !ok {
		return fmt.Errorf("unknown token")
	}
	resp.Active, resp.Scope, resp.Subject, resp.Expiration = true, tok.scopes, subject, oidc.FromTime(tok.expires)
	return nil
}

// introspect asks endpoint about token (RFC 7662 §2) as the confidential
// client id.
func introspect(ctx context.Context, hc *http.Client, endpoint, token, id, secret string) (*TokenInfo, error) {
	form := url.Values{"token": {token}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret))
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("realserver: introspection: %w", err)
	}
	defer resp.Body.Close()
	var ir struct {
		Active bool   `json:"active"`
		Scope  string `json:"scope"`
		Sub    string `json:"sub"`
		Exp    int64  `json:"exp"`
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("realserver: introspection: %s", resp.Status)
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxPage)).Decode(&ir); err != nil {
		return nil, fmt.Errorf("realserver: introspection: %w", err)
	}
	if !ir.Active {
		return nil, fmt.Errorf("%w: inactive", ErrInvalidToken)
	}
	info := &TokenInfo{Subject: ir.Sub, Scopes: strings.Fields(ir.Scope)}
	if ir.Exp > 0 {
		info.Expires = time.Unix(ir.Exp, 0)
	}
	return info, nil
}

// zitadelPerson signs in on the example's login form and follows the
// redirect to the client's redirect URI.
type zitadelPerson struct {
	issuer  string
	browser *http.Client
}

func (p *zitadelPerson) browse(ctx context.Context, authURL string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, authURL, nil)
	if err != nil {
		return err
	}
	resp, err := p.browser.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxPage))
	resp.Body.Close()
	id := resp.Request.URL.Query().Get("authRequestID")
	if resp.Request.URL.Path != "/login/username" || id == "" {
		return fmt.Errorf("realserver: expected zitadel's login form, got %s (%s)", resp.Request.URL, resp.Status)
	}
	u, err := url.Parse(p.issuer)
	if err != nil {
		return err
	}
	form := url.Values{"username": {"test-user@" + u.Hostname()}, "password": {zitadelPass}, "id": {id}}
	req, err = http.NewRequestWithContext(ctx, http.MethodPost, p.issuer+"/login/username", strings.NewReader(form.Encode()))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err = p.browser.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.Request.URL.Host == u.Host {
		page, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return fmt.Errorf("realserver: sign-in ended on %s: %s %s", resp.Request.URL, resp.Status, page)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxPage))
	return nil
}
