// Package zitadel_test runs stepup's authorization code Escalator against
// a maintained OpenID Provider, github.com/zitadel/oidc/v3's op package
// with the example storage and login UI it ships, in process on loopback:
// discovery through OpenID Connect Discovery (the provider serves no
// RFC 8414 document), a pre-registered native client on a loopback
// redirect URI of any port (RFC 8252 §7.3), the provider's own login form
// filled in by a stand-in browser, PKCE S256, a refresh token for
// offline_access, a step-up to a scope the first token lacks, and a
// refresh after the access token is revoked. The provider is
// realserver.StartZitadel, which the real-server scenario suite
// (examples/realservers) runs too.
package zitadel_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/zitadel/oidc/v3/example/server/storage"
	"go.uber.org/goleak"

	"github.com/stepup-go/stepup"
	"github.com/stepup-go/stepup/authcode"
	"github.com/stepup-go/stepup/discovery"
	"github.com/stepup-go/stepup/examples/internal/realserver"
)

func TestMain(m *testing.M) {
	// The example provider logs every request through slog's default.
	slog.SetDefault(slog.New(slog.NewTextHandler(io.Discard, nil)))
	goleak.VerifyTestMain(m)
}

// resourceServer is an MCP-like protected resource whose tokens the
// provider issues: it introspects them (RFC 7662, srv.Verify) and asks
// for the scope each operation needs (RFC 6750 §3.1, RFC 9728 §5.1).
func resourceServer(t *testing.T, ln net.Listener, srv func() *realserver.Server) *httptest.Server {
	rs := httptest.NewUnstartedServer(nil)
	rs.Listener.Close()
	rs.Listener = ln
	rs.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		meta := fmt.Sprintf(`resource_metadata="%s/.well-known/oauth-protected-resource/mcp"`, rs.URL)
		switch {
		case r.URL.Path == "/.well-known/oauth-protected-resource/mcp":
			w.Header().Set("Content-Type", "application/json")
			json.NewEncoder(w).Encode(map[string]any{"resource": rs.URL + "/mcp", "authorization_servers": []string{srv().Issuer}})
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
		info, err := srv().Verify(r.Context(), token)
		if err != nil {
			w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token", `+meta)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		if r.URL.Path == "/mcp/tools/custom" && !slices.Contains(info.Scopes, storage.CustomScope) {
			w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer error="insufficient_scope", scope=%q, %s`, storage.CustomScope, meta))
			w.WriteHeader(http.StatusForbidden)
			return
		}
		fmt.Fprintf(w, "ok %s", r.URL.Path)
	})
	rs.Start()
	t.Cleanup(rs.Close)
	return rs
}

func TestStepUpAgainstZitadel(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	var prov *realserver.Server
	rs := resourceServer(t, ln, func() *realserver.Server { return prov })
	prov = realserver.StartZitadel(t, realserver.ZitadelOptions{Resource: rs.URL + "/mcp"})
	var consents []string // the scope of each authorization request
	open := func(ctx context.Context, authURL string) error {
		u, err := url.Parse(authURL)
		require.NoError(t, err)
		consents = append(consents, u.Query().Get("scope"))
		return prov.Browser(ctx, authURL)
	}

	disc := &discovery.Client{}
	t.Cleanup(disc.CloseIdleConnections)
	esc := &authcode.Escalator{
		Receiver:  &authcode.Loopback{Open: open},
		Client:    prov.Client,
		Discovery: disc,
	}
	ts, err := stepup.NewTokenSource(rs.URL+"/mcp", nil, stepup.WithEscalator(esc))
	require.NoError(t, err)
	client := &http.Client{Transport: &stepup.Transport{Source: ts}}

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
	require.Len(t, consents, 2, "a login, then a step-up")
	assert.ElementsMatch(t, []string{"openid", "offline_access"}, strings.Fields(consents[0]))
	assert.ElementsMatch(t, []string{"openid", "offline_access", storage.CustomScope}, strings.Fields(consents[1]))
	_, granted := ts.Scopes()
	assert.Contains(t, granted, storage.CustomScope)

	// The source refreshes through the provider with the client used, and
	// the provider keeps the grant's scope.
	stepped, err := ts.Token()
	require.NoError(t, err)
	expired := *stepped
	expired.Expiry = time.Now().Add(-time.Minute)
	requested, _ := ts.Scopes()
	ts.Set(&expired, requested)
	refreshed, err := ts.Token()
	require.NoError(t, err)
	assert.NotEqual(t, stepped.AccessToken, refreshed.AccessToken)
	assert.NotEqual(t, stepped.RefreshToken, refreshed.RefreshToken, "the provider rotates refresh tokens")
	assert.Equal(t, "ok /mcp/tools/custom", get("/mcp/tools/custom"))
	assert.Equal(t, map[string]int{"authorization_code": 2, "refresh_token": 1}, prov.Counts().Grants, "two codes redeemed, one refresh")
	assert.Equal(t, 2, prov.Counts().Authorizations)

	// A revoked access token (RFC 7009): introspection says inactive, the
	// resource answers 401 invalid_token, and the source refreshes once.
	require.NoError(t, prov.Revoke(context.Background(), refreshed.AccessToken))
	_, err = prov.Verify(context.Background(), refreshed.AccessToken)
	require.ErrorIs(t, err, realserver.ErrInvalidToken)
	assert.Equal(t, "ok /mcp/tools/custom", get("/mcp/tools/custom"))
	assert.Equal(t, map[string]int{"authorization_code": 2, "refresh_token": 2}, prov.Counts().Grants, "one refresh more")
	assert.Equal(t, 2, prov.Counts().Authorizations, "no new login")
	assert.Len(t, consents, 2, "no third authorization")
}
