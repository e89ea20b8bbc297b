package realservers_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
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
	"github.com/stepup-go/stepup/examples/internal/realserver"
)

// Regression tests of the authcode Escalator against oidc-provider for
// what the scenario suite does not show: the resource moving to another
// authorization server, and a refused redirect URI reported before any
// browser opens.

// movingResource is a protected resource whose authorization server can
// change: its metadata (RFC 9728) names the current one, and only the
// current one's tokens are accepted.
type movingResource struct {
	srv      *httptest.Server
	resource string

	mu  sync.Mutex
	cur *realserver.Server
}

func newMovingResource(t *testing.T, ln net.Listener) *movingResource {
	m := &movingResource{resource: "http://" + ln.Addr().String() + "/mcp"}
	m.srv = httptest.NewUnstartedServer(http.HandlerFunc(m.serve))
	m.srv.Listener.Close()
	m.srv.Listener = ln
	m.srv.Start()
	t.Cleanup(m.srv.Close)
	return m
}

func (m *movingResource) use(as *realserver.Server) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.cur = as
}

func (m *movingResource) current() *realserver.Server {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.cur
}

func (m *movingResource) metadataURL() string {
	return m.srv.URL + "/.well-known/oauth-protected-resource/mcp"
}

func (m *movingResource) serve(w http.ResponseWriter, r *http.Request) {
	as := m.current()
	if r.URL.Path == "/.well-known/oauth-protected-resource/mcp" {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{
			"resource": m.resource, "authorization_servers": []string{as.Issuer},
			"scopes_supported": []string{realserver.ScopeRead},
		})
		return
	}
	challenge := fmt.Sprintf(`Bearer resource_metadata=%q, scope=%q`, m.metadataURL(), realserver.ScopeRead)
	token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		w.Header().Set("WWW-Authenticate", challenge)
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	info, err := as.Verify(r.Context(), token)
	if err != nil || !slices.Contains(info.Scopes, realserver.ScopeRead) {
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token", `+strings.TrimPrefix(challenge, "Bearer "))
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	_, _ = io.WriteString(w, "ok")
}

// browserFor sends each authorization URL to the person of the server it
// points to.
func browserFor(servers ...*realserver.Server) authcode.OpenFunc {
	return func(ctx context.Context, authURL string) error {
		for _, as := range servers {
			if strings.HasPrefix(authURL, as.Issuer+"/") {
				return as.Browser(ctx, authURL)
			}
		}
		return fmt.Errorf("no server for %s", authURL)
	}
}

// startMoving starts n oidc-providers for one resource, and the resource,
// with the first as its authorization server; it checks for leaked
// goroutines when t ends.
func startMoving(t *testing.T, n int) (*movingResource, []*realserver.Server) {
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	resource := "http://" + ln.Addr().String() + "/mcp"
	var servers []*realserver.Server
	for range n {
		servers = append(servers, realserver.StartOIDCProvider(t, realserver.OIDCProviderOptions{Resource: resource}))
	}
	rs := newMovingResource(t, ln)
	rs.use(servers[0])
	return rs, servers
}

func getOK(t *testing.T, hc *http.Client, url string) {
	t.Helper()
	resp, err := hc.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s", body)
}

// When the resource's metadata switches from one oidc-provider to
// another, the client registers at the second and logs in there, with a
// refresh token of the first in hand: no refresh at the first, whose
// tokens the resource no longer takes, and the first's client is never
// shown to the second.
func TestAuthorizationServerMigration(t *testing.T) {
	rs, servers := startMoving(t, 2)
	as1, as2, resource := servers[0], servers[1], rs.resource

	disc := &discovery.Client{}
	t.Cleanup(disc.CloseIdleConnections)
	esc := &authcode.Escalator{Receiver: &authcode.Loopback{Open: browserFor(as1, as2)}, Discovery: disc}
	base := &http.Transport{}
	t.Cleanup(base.CloseIdleConnections)
	ts, err := stepup.NewTokenSource(resource, nil, stepup.WithEscalator(esc))
	require.NoError(t, err)
	hc := &http.Client{Transport: &stepup.Transport{Base: base, Source: ts}}

	getOK(t, hc, resource)
	first, err := ts.Token()
	require.NoError(t, err)
	require.NotEmpty(t, first.RefreshToken, "offline_access, with prompt=consent, brought a refresh token")
	require.Equal(t, 1, as1.Counts().Registrations)

	rs.use(as2)
	getOK(t, hc, resource)

	n1, n2 := as1.Counts(), as2.Counts()
	assert.Equal(t, 1, n2.Registrations, "registered at the new server")
	assert.Equal(t, 1, n2.Authorizations, "and logged in there")
	assert.Equal(t, 1, n2.Grants["authorization_code"])
	assert.Zero(t, n1.Grants["refresh_token"], "no refresh at the server the resource left")
	assert.Equal(t, 1, n1.Authorizations)
	second, err := ts.Token()
	require.NoError(t, err)
	_, err = as2.Verify(context.Background(), second.AccessToken)
	assert.NoError(t, err, "the token is the new server's")
}

// A client registered as a web client is held to its exact redirect URI;
// on another loopback port, the pushed authorization request (RFC 9126)
// that oidc-provider offers is refused at once, with the server's error,
// and no browser opens.
func TestRefusedRedirectURIBeforeBrowser(t *testing.T) {
	rs, servers := startMoving(t, 1)
	as, resource := servers[0], rs.resource

	clientID := registerWebClient(t, as.Issuer, "http://127.0.0.1:1/callback")
	opened := false
	esc := &authcode.Escalator{
		Client: &authcode.Registration{Issuer: as.Issuer, ClientID: clientID},
		Receiver: &authcode.Loopback{Open: func(context.Context, string) error {
			opened = true
			return nil
		}},
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	start := time.Now()
	_, err := esc.Escalate(ctx, &stepup.EscalationRequest{
		Reason: stepup.ReasonAuthorizationRequired, Scopes: stepup.Scopes{realserver.ScopeRead},
		MaxAge: stepup.NoMaxAge, Resource: resource, ResourceMetadata: rs.metadataURL(),
	})
	var ae *authcode.AuthorizationError
	require.ErrorAs(t, err, &ae)
	assert.Equal(t, http.StatusBadRequest, ae.StatusCode)
	assert.Equal(t, "invalid_request", ae.Code, "%v", err)
	assert.Contains(t, ae.Description, "redirect_uri")
	assert.False(t, errors.Is(err, stepup.ErrDeclined))
	assert.False(t, opened, "no browser for a request the server refused")
	assert.Less(t, time.Since(start), 10*time.Second)
	assert.Zero(t, as.Counts().Authorizations)
}

// registerWebClient registers a public web client at issuer's
// registration endpoint (RFC 7591), as an administrator might.
func registerWebClient(t *testing.T, issuer, redirectURI string) string {
	t.Helper()
	disc := &discovery.Client{}
	t.Cleanup(disc.CloseIdleConnections)
	md, err := disc.AuthServer(context.Background(), issuer+"/mcp", issuer)
	require.NoError(t, err)
	require.NotEmpty(t, md.PushedAuthorizationRequestEndpoint, "oidc-provider offers pushed authorization requests")
	body, err := json.Marshal(map[string]any{
		"application_type": "web", "redirect_uris": []string{redirectURI},
		"token_endpoint_auth_method": "none", "grant_types": []string{"authorization_code"}, "response_types": []string{"code"},
	})
	require.NoError(t, err)
	resp, err := disc.HTTPClient(issuer).Post(md.RegistrationEndpoint, "application/json", strings.NewReader(string(body)))
	require.NoError(t, err)
	defer resp.Body.Close()
	var out struct {
		ClientID string `json:"client_id"`
	}
	require.Equal(t, http.StatusCreated, resp.StatusCode)
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&out))
	require.NotEmpty(t, out.ClientID)
	return out.ClientID
}
