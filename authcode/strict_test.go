package authcode_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stepup-go/stepup"
	"github.com/stepup-go/stepup/authcode"
)

// Against an OpenID Provider, the login asks for offline_access with openid
// and prompt=consent, so that a refresh token comes (OpenID Connect Core
// 1.0 §11): the expiry is a refresh, not a login. The step-up that follows
// is a new authorization, with the refresh token in hand.
func TestOpenIDProviderRefreshAndStepUp(t *testing.T) {
	w := newWorld(t)
	w.as.OpenID = true
	w.rs.initialScope = "read"
	w.rs.needs["/mcp/write"] = "write"

	status, _, err := w.get(t, "/mcp/read")
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, status)
	tok, err := w.ts.Token()
	require.NoError(t, err)
	assert.NotEmpty(t, tok.RefreshToken, "the provider kept offline_access")

	w.as.ExpireAccessTokens()
	status, _, err = w.get(t, "/mcp/read")
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, status)

	status, _, err = w.get(t, "/mcp/write")
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, status)

	auths := w.as.AuthorizationRequests()
	require.Len(t, auths, 2, "the login and the step-up; the expiry was a refresh")
	assert.ElementsMatch(t, []string{"read", "offline_access", "openid"}, scopeOf(auths[0]))
	assert.Subset(t, scopeOf(auths[1]), []string{"read", "write", "offline_access", "openid"})
	for _, q := range auths {
		assert.Equal(t, "consent", q.Get("prompt"))
	}
	assert.Equal(t, []string{"authorization_code", "refresh_token", "authorization_code"}, w.as.GrantTypes(),
		"the 403 got an authorization, never a refresh, though a refresh token was held")
}

// A server whose scopes_supported lists openid is an OpenID Provider too,
// wherever its metadata was found; a plain OAuth server gets neither
// openid nor prompt.
func TestOpenIDProviderBySupportedScopes(t *testing.T) {
	w := newWorld(t)
	w.as.ScopesSupported = []string{"read", "offline_access", "openid"}
	w.rs.initialScope = "read"
	status, _, err := w.get(t, "/mcp/read")
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, status)
	q := w.as.AuthorizationRequests()[0]
	assert.ElementsMatch(t, []string{"read", "offline_access", "openid"}, scopeOf(q))
	assert.Equal(t, "consent", q.Get("prompt"))

	plain := newWorld(t)
	plain.rs.initialScope = "read"
	status, _, err = plain.get(t, "/mcp/read")
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, status)
	q = plain.as.AuthorizationRequests()[0]
	assert.ElementsMatch(t, []string{"read", "offline_access"}, scopeOf(q))
	assert.False(t, q.Has("prompt"))
}

// RFC 9470 step-up at an OpenID Provider, which refuses acr_values,
// max_age and claims without the openid scope; without offline_access,
// no prompt=consent either.
func TestOpenIDProviderStepUpAuthentication(t *testing.T) {
	w := newWorld(t)
	w.as.OpenID = true
	w.esc.NoOfflineAccess = true
	w.rs.needsACR["/mcp/pay"] = "urn:high"
	status, _, err := w.get(t, "/mcp/pay")
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, status)
	auths := w.as.AuthorizationRequests()
	require.Len(t, auths, 2)
	assert.NotContains(t, scopeOf(auths[0]), "openid", "the login uses no OpenID Connect parameter")
	assert.Contains(t, scopeOf(auths[1]), "openid")
	assert.Equal(t, "urn:high", auths[1].Get("acr_values"))
	assert.Equal(t, "0", auths[1].Get("max_age"))
	assert.False(t, auths[1].Has("prompt"))

	claims := `{"id_token":{"acr":{"essential":true,"values":["urn:high"]}}}`
	w2 := newWorld(t)
	w2.as.OpenID = true
	w2.rs.needsClaims["/mcp/audit"] = claims
	status, _, err = w2.get(t, "/mcp/audit")
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, status)
	auths = w2.as.AuthorizationRequests()
	require.Len(t, auths, 2)
	assert.Contains(t, scopeOf(auths[1]), "openid")
}

// A loopback redirect URI is registered as a native client's (OpenID
// Connect Dynamic Client Registration 1.0 §2), so that a server holding web
// clients to their exact redirect URI lets the port change (RFC 8252 §7.3):
// the second login, on another free port, uses the same registration.
func TestNativeRegistrationKeepsLoopbackPortFree(t *testing.T) {
	w := newWorld(t)
	b := newBrowser(t)
	w.esc.Receiver = &authcode.Loopback{Open: b.open}
	var ports []string
	for range 2 {
		_, err := w.esc.Escalate(bounded(t), loopbackRequest(w))
		require.NoError(t, err)
		auths := w.as.AuthorizationRequests()
		redirect, err := url.Parse(auths[len(auths)-1].Get("redirect_uri"))
		require.NoError(t, err)
		ports = append(ports, redirect.Port())
	}
	assert.NotEqual(t, ports[0], ports[1], "each login listens on a new free port")
	regs := w.as.RegistrationRequests()
	require.Len(t, regs, 1, "registered once")
	assert.Equal(t, "native", regs[0]["application_type"])
}

// A redirect URI on an https host is a web client's.
func TestWebRegistrationForHTTPSRedirect(t *testing.T) {
	w := newWorld(t)
	w.esc.Receiver = &authcode.Headless{RedirectURI: "https://app.example/oauth/callback"}
	status, _, err := w.get(t, "/mcp/x")
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, status)
	regs := w.as.RegistrationRequests()
	require.Len(t, regs, 1)
	assert.Equal(t, "web", regs[0]["application_type"])
}

// A server that pins the loopback port, for a client registered beforehand
// as a web client with it: Loopback.Port is all it takes.
func TestLoopbackPortPinnedByServer(t *testing.T) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	require.NoError(t, err)
	port := ln.Addr().(*net.TCPAddr).Port
	require.NoError(t, ln.Close())

	w := newWorld(t)
	w.as.NoRegistration = true
	preRegisterWeb(w.as, "pinned", "http://127.0.0.1:"+strconv.Itoa(port)+"/callback")
	w.esc.Client = &authcode.Registration{ClientID: "pinned"}
	b := newBrowser(t)
	w.esc.Receiver = &authcode.Loopback{Open: b.open, Port: port}
	for range 2 {
		_, err := w.esc.Escalate(bounded(t), loopbackRequest(w))
		require.NoError(t, err)
	}
	assert.Len(t, w.as.TokenRequests(), 2)
}

// When the resource's metadata names another authorization server, the
// next authorization goes there, with a client registered there; the
// first server's client is never shown to the second.
func TestReregisterOnAuthorizationServerChange(t *testing.T) {
	for _, offline := range []bool{false, true} {
		t.Run("offline_access="+strconv.FormatBool(offline), func(t *testing.T) {
			w := newWorld(t)
			w.esc.NoOfflineAccess = !offline
			w.rs.initialScope = "read"
			status, _, err := w.get(t, "/mcp/a")
			require.NoError(t, err)
			require.Equal(t, http.StatusOK, status)
			first := w.as.AuthorizationRequests()[0].Get("client_id")

			as2 := newAuthServer(t)
			w.rs.moveTo(as2)
			status, _, err = w.get(t, "/mcp/b")
			require.NoError(t, err)
			assert.Equal(t, http.StatusOK, status)

			assert.Equal(t, 1, as2.Stats().Registrations, "registered at the new server")
			auths := as2.AuthorizationRequests()
			require.Len(t, auths, 1)
			assert.NotEqual(t, first, auths[0].Get("client_id"))
			for _, tr := range as2.TokenRequests() {
				assert.NotEqual(t, first, tr.ClientID, "the first server's client is not used at the second")
			}
			assert.Len(t, w.as.AuthorizationRequests(), 1, "nothing more at the first server")
		})
	}
}

// From an OpenID Provider to a plain OAuth server that lists neither
// openid nor offline_access: the grant's openid and offline_access are not
// carried over to it.
func TestMigrationToPlainServerDropsServerScopes(t *testing.T) {
	w := newWorld(t)
	w.as.OpenID = true
	w.rs.initialScope = "read"
	status, _, err := w.get(t, "/mcp/a")
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, status)
	require.Contains(t, scopeOf(w.as.AuthorizationRequests()[0]), "openid")

	plain := newAuthServer(t)
	plain.ScopesSupported = []string{"read", "write"}
	w.rs.moveTo(plain)
	status, _, err = w.get(t, "/mcp/b")
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, status)
	auths := plain.AuthorizationRequests()
	require.Len(t, auths, 1)
	assert.Equal(t, []string{"read"}, scopeOf(auths[0]))
	assert.False(t, auths[0].Has("prompt"))
}

// recordingReceiver hands the authorization URLs it sees to urls.
type recordingReceiver struct {
	authcode.Receiver
	urls []string
}

func (r *recordingReceiver) Receive(ctx context.Context, authorize authcode.AuthorizeFunc) (url.Values, error) {
	return r.Receiver.Receive(ctx, func(ctx context.Context, redirectURI string) (*authcode.AuthorizationRequest, error) {
		ar, err := authorize(ctx, redirectURI)
		if ar != nil {
			r.urls = append(r.urls, ar.URL)
		}
		return ar, err
	})
}

// With a pushed authorization request endpoint (RFC 9126), the request's
// parameters go to the server directly, authenticated as at the token
// endpoint, and the browser carries only client_id and request_uri.
func TestPushedAuthorizationRequest(t *testing.T) {
	for _, method := range []string{authcode.AuthMethodNone, authcode.AuthMethodBasic, authcode.AuthMethodPost} {
		t.Run(method, func(t *testing.T) {
			w := newWorld(t)
			w.as.PAR = true
			w.as.EndpointQuery = "?p=B2C_1_signin"
			w.as.AuthMethods = []string{method}
			rec := &recordingReceiver{Receiver: &authcode.Headless{}}
			w.esc.Receiver = rec
			w.rs.initialScope = "read"
			status, _, err := w.get(t, "/mcp/x")
			require.NoError(t, err)
			require.Equal(t, http.StatusOK, status)

			pushes := w.as.PushedRequests()
			require.Len(t, pushes, 1)
			assert.Equal(t, []string{w.rs.resource}, pushes[0]["resource"])
			assert.Equal(t, "S256", pushes[0].Get("code_challenge_method"))
			require.Len(t, rec.urls, 1)
			u, err := url.Parse(rec.urls[0])
			require.NoError(t, err)
			assert.ElementsMatch(t, []string{"client_id", "request_uri", "p"}, keys(u.Query()))
			assert.Equal(t, "B2C_1_signin", u.Query().Get("p"), "the endpoint's own query stays")
			assert.False(t, pushes[0].Has("p"), "and is not pushed")
			assert.Equal(t, pushes[0].Get("client_id"), u.Query().Get("client_id"))
			tr := w.as.TokenRequests()
			require.Len(t, tr, 1)
			assert.Equal(t, method, tr[0].AuthMethod, "authenticated at both endpoints by the registered method")
		})
	}
}

func keys(v url.Values) []string {
	var out []string
	for k := range v {
		out = append(out, k)
	}
	return out
}

// What a server refuses in a pushed request comes back as an error before
// any browser opens: here a redirect URI the server does not allow, which
// at the authorization endpoint would leave the person on the server's
// error page and the caller waiting for its timeout (RFC 6749 §4.1.2.1).
func TestPushedAuthorizationRequestRefused(t *testing.T) {
	w := newWorld(t)
	w.as.PAR = true
	w.as.NoRegistration = true
	preRegisterWeb(w.as, "web-client", "http://127.0.0.1:1/callback")
	w.esc.Client = &authcode.Registration{ClientID: "web-client"}
	opened := false
	w.esc.Receiver = &authcode.Loopback{Open: func(context.Context, string) error { opened = true; return nil }}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	start := time.Now()
	_, err := w.esc.Escalate(ctx, loopbackRequest(w))
	var ae *authcode.AuthorizationError
	require.ErrorAs(t, err, &ae)
	assert.Equal(t, http.StatusBadRequest, ae.StatusCode)
	assert.Equal(t, "invalid_request", ae.Code)
	assert.Contains(t, ae.Description, "redirect_uri")
	assert.False(t, errors.Is(err, stepup.ErrDeclined))
	assert.Contains(t, err.Error(), "pushed authorization request answered 400")
	assert.False(t, opened, "no browser for a request the server refused")
	assert.Less(t, time.Since(start), 10*time.Second, "refused at once, not at the timeout")
	assert.Empty(t, w.as.AuthorizationRequests())
}

// A pushed authorization request endpoint that is not https would get the
// request, and a client secret, in the clear: the server is not used.
func TestPushedAuthorizationEndpointMustBeHTTPS(t *testing.T) {
	w := newWorld(t)
	w.as.PAR = true
	w.as.PARURL = "http://par.example/par"
	_, _, err := w.get(t, "/mcp/x")
	assert.ErrorContains(t, err, "pushed authorization request endpoint is not https")
	assert.Zero(t, w.as.Stats().Registrations, "nothing sent to the server")
	assert.Empty(t, w.as.AuthorizationRequests())
}

// OmitResource, for servers that refuse RFC 8707 (Entra ID v2.0): no
// resource in the authorization, token or refresh request.
func TestOmitResource(t *testing.T) {
	w := newWorld(t)
	w.as.RefuseResource = true
	w.rs.initialScope = "read"
	_, _, err := w.get(t, "/mcp/x")
	require.Error(t, err, "the server refuses the resource")
	var ae *authcode.AuthorizationError
	require.ErrorAs(t, err, &ae)
	assert.Equal(t, "invalid_target", ae.Code)

	w = newWorld(t)
	w.as.RefuseResource = true
	w.esc.OmitResource = true
	w.rs.initialScope = "read"
	status, _, err := w.get(t, "/mcp/x")
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, status)
	w.as.ExpireAccessTokens()
	status, _, err = w.get(t, "/mcp/x")
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, status)

	assert.False(t, w.as.AuthorizationRequests()[0].Has("resource"))
	trs := w.as.TokenRequests()
	require.Len(t, trs, 2)
	assert.Equal(t, "refresh_token", trs[1].Form.Get("grant_type"))
	for _, tr := range trs {
		assert.False(t, tr.Form.Has("resource"))
	}
}

// AuthorizationParams reach every authorization request; a prompt is
// added to, and a parameter the Escalator sets is refused before anything
// is sent.
func TestAuthorizationParams(t *testing.T) {
	w := newWorld(t)
	w.as.OpenID = true
	w.rs.initialScope = "read"
	w.esc.AuthorizationParams = url.Values{"audience": {"https://api.example"}, "prompt": {"login"}}
	status, _, err := w.get(t, "/mcp/x")
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, status)
	q := w.as.AuthorizationRequests()[0]
	assert.Equal(t, "https://api.example", q.Get("audience"))
	assert.ElementsMatch(t, []string{"login", "consent"}, strings.Fields(q.Get("prompt")))

	silent := newWorld(t)
	silent.as.OpenID = true
	silent.esc.AuthorizationParams = url.Values{"prompt": {"none"}}
	_, err = silent.esc.Escalate(bounded(t), loopbackRequest(silent))
	require.NoError(t, err)
	assert.Equal(t, "none", silent.as.AuthorizationRequests()[0].Get("prompt"), "none stands alone")

	for _, bad := range []url.Values{{"scope": {"admin"}}, {"resource": {"https://elsewhere"}}, {"audience": {"a", "b"}}} {
		w := newWorld(t)
		w.esc.AuthorizationParams = bad
		_, _, err := w.get(t, "/mcp/x")
		assert.ErrorContains(t, err, "AuthorizationParams")
		assert.Empty(t, w.as.AuthorizationRequests())
	}
}

// With no registration endpoint and no client for the server, the error
// is ErrNoClient, naming the issuer, and nothing is sent.
func TestNoClientForServer(t *testing.T) {
	w := newWorld(t)
	w.as.NoRegistration = true
	w.esc.Client = &authcode.Registration{Issuer: "https://elsewhere.example", ClientID: "cli"}
	_, _, err := w.get(t, "/mcp/x")
	require.ErrorIs(t, err, authcode.ErrNoClient)
	assert.Contains(t, err.Error(), w.as.IssuerID())
	assert.Empty(t, w.as.AuthorizationRequests())
}

// A registration kept from before application_type was sent is not taken
// to allow any loopback port: on another port, the client registers again,
// as native; a native one is used on any port.
func TestKeptRegistrationWithoutApplicationType(t *testing.T) {
	for _, appType := range []string{"", "native"} {
		t.Run("application_type="+appType, func(t *testing.T) {
			w := newWorld(t)
			preRegisterWeb(w.as, "old-client", "http://127.0.0.1:1/callback")
			if appType == "native" {
				preRegister(w.as, "old-client", "", "none", "http://127.0.0.1:1/callback")
			}
			store := &authcode.MemoryRegistrations{}
			require.NoError(t, store.SaveRegistration(context.Background(), &authcode.Registration{
				Issuer: w.as.IssuerID(), ClientID: "old-client", AuthMethod: authcode.AuthMethodNone,
				RedirectURIs: []string{"http://127.0.0.1:1/callback"}, ApplicationType: appType,
			}))
			w.esc.Registrations = store
			b := newBrowser(t)
			w.esc.Receiver = &authcode.Loopback{Open: b.open}
			_, err := w.esc.Escalate(bounded(t), loopbackRequest(w))
			require.NoError(t, err)
			used := w.as.AuthorizationRequests()[0].Get("client_id")
			if appType == "native" {
				assert.Equal(t, "old-client", used)
				assert.Zero(t, w.as.Stats().Registrations)
				return
			}
			assert.NotEqual(t, "old-client", used)
			regs := w.as.RegistrationRequests()
			require.Len(t, regs, 1)
			assert.Equal(t, "native", regs[0]["application_type"])
			kept, err := store.LoadRegistration(context.Background(), w.as.IssuerID())
			require.NoError(t, err)
			assert.Equal(t, "native", kept.ApplicationType)
		})
	}
}

// bounded is a context for an escalation through a Loopback: a browser
// left on an error page must fail the test, not hang it.
func bounded(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}
