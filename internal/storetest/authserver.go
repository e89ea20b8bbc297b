package storetest

import (
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/stepup-go/stepup"
	"github.com/stepup-go/stepup/internal/oauthtest"
)

// stormClient is the public client storm children are.
const stormClient = "storm"

// stormRedirect is its registered redirect URI; the escalator reads the
// code off the redirect without following it.
const stormRedirect = "http://127.0.0.1/callback"

// AuthServer is the repository's test authorization server (package
// oauthtest) as strict as the strict real ones, and the protected resource
// it guards:
//
//   - it keeps one grant at a time: each refresh and each authorization
//     makes the next generation and supersedes the earlier ones; a
//     refresh token is rotated on use, and presenting a spent one again is
//     taken as theft and revokes the grant (OAuth 2.1 §4.3.1, RFC 9700
//     §4.14.2); a refresh requires the RFC 8707 resource parameter;
//   - its user consents at once to an authorization code flow;
//   - GET /mcp/{scope} of the resource needs the current access token,
//     unexpired, with scope {scope}: else 401 invalid_token or 403
//     insufficient_scope (RFC 6750 §3.1). It answers "gen N", the grant's
//     generation.
type AuthServer struct {
	as *oauthtest.Server
	rs *httptest.Server
}

// NewAuthServer starts an AuthServer on loopback, closed when the test
// ends.
func NewAuthServer(t testing.TB) *AuthServer {
	a := &AuthServer{as: oauthtest.Start(t, oauthtest.Config{
		SingleGrant:          true,
		RefreshAlways:        true,
		RefreshNeedsResource: true,
		Clients:              []oauthtest.Client{{ID: stormClient, RedirectURIs: []string{stormRedirect}}},
	})}
	a.rs = httptest.NewServer(http.HandlerFunc(a.resource))
	t.Cleanup(a.rs.Close)
	a.as.AllowResource(a.Resource())
	return a
}

// URL is the authorization server's base URL, also its issuer identifier.
func (a *AuthServer) URL() string { return a.as.URL }

// Resource is the RFC 8707 resource the server's tokens are for.
func (a *AuthServer) Resource() string { return a.rs.URL + "/mcp" }

// Key is the key under which storm children share the server's grant.
func (a *AuthServer) Key() stepup.StoreKey {
	return stepup.StoreKey{Resource: a.Resource(), Issuer: a.URL()}
}

// Issue makes a new grant for scopes, as a first authorization would,
// without counting it as an escalation, and returns it.
func (a *AuthServer) Issue(scopes ...string) *stepup.SavedGrant {
	granted := stepup.Scopes(nil).Union(scopes)
	tok := a.as.Issue(oauthtest.Grant{ClientID: stormClient, Resource: a.Resource(), Scopes: granted, Refresh: true})
	return &stepup.SavedGrant{Token: tok, Requested: granted, Granted: granted, Issuer: a.URL()}
}

// ExpireAccessToken makes the current access token rejected as expired
// (401 invalid_token) although its holders think it valid.
func (a *AuthServer) ExpireAccessToken() { a.as.ExpireAccessTokens() }

// Counts returns the refreshes and escalations served, and whether the
// grant was revoked.
func (a *AuthServer) Counts() (refreshes, escalations int, revoked bool) {
	st := a.as.Stats()
	return st.Refreshes(), st.ConsentPrompts, st.ReusedRefreshTokens > 0
}

// Generation returns the current grant's generation.
func (a *AuthServer) Generation() int { return a.as.Stats().AccessTokens }

func (a *AuthServer) resource(w http.ResponseWriter, r *http.Request) {
	scope, ok := strings.CutPrefix(r.URL.Path, "/mcp/")
	if !ok || r.Method != http.MethodGet {
		http.NotFound(w, r)
		return
	}
	tok, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	info, ok := a.as.Introspect(tok)
	switch {
	case !ok || info.Resource != a.Resource():
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
		w.WriteHeader(http.StatusUnauthorized)
	case !slices.Contains(info.Scopes, scope):
		w.Header().Set("WWW-Authenticate", `Bearer error="insufficient_scope", scope="`+scope+`"`)
		w.WriteHeader(http.StatusForbidden)
	default:
		_, _ = w.Write([]byte("gen " + strconv.Itoa(info.Serial)))
	}
}
