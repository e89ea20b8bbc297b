package stepup_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"

	"golang.org/x/oauth2"

	"github.com/stepup-go/stepup"
	"github.com/stepup-go/stepup/internal/oauthtest"
)

// testClient and testRedirect are the client the world's Escalator and
// token source are, as pre-registered at the authorization server.
const (
	testClient   = "stepup-test"
	testRedirect = "http://127.0.0.1/callback"
)

// grant is what the authorization server knows about a token.
type grant struct {
	scopes stepup.Scopes
	acr    string
	claims string
}

// count reads one of the authorization server's counts the way the tests
// read their atomic counters.
type count func() int32

// Load returns the count now.
func (c count) Load() int32 { return c() }

// authServer is the repository's test authorization server (package
// oauthtest) for the world's resource: the authorization code grant with
// PKCE, consent at once, and refresh token rotation with reuse revoking the
// grant (OAuth 2.1 §4.3.1). It issues a refresh token with every grant, as
// many servers do, unless RefreshAlways is unset. Tests inject faults at its
// token endpoint through the fields below.
type authServer struct {
	*oauthtest.Server
	resource string // the resource issue's tokens are for: the world's

	mu      sync.Mutex
	gate    chan struct{}   // if set, refreshes wait for it
	arrived chan url.Values // if set, told of each refresh request

	refreshHits   count        // refresh requests received
	reuses        count        // a rotated-out refresh token was presented
	failRefresh   atomic.Bool  // refresh requests fail with invalid_grant
	echoOnFailure atomic.Bool  // the failure body echoes the refresh token
	unavailable   atomic.Int32 // so many refresh requests get a 503 first
	resets        atomic.Int32 // so many refresh requests have their connection dropped first
}

func newAuthServer(t *testing.T) *authServer {
	a := &authServer{}
	a.Server = oauthtest.Start(t, oauthtest.Config{
		TokenMark:     secretMark,
		RefreshAlways: true,
		Clients:       []oauthtest.Client{{ID: testClient, RedirectURIs: []string{testRedirect}}},
		TokenHook:     a.fault,
	})
	a.refreshHits = func() int32 { return int32(a.Stats().Refreshes()) }
	a.reuses = func() int32 { return int32(a.Stats().ReusedRefreshTokens) }
	return a
}

// fault answers a refresh request with the fault a test set, if any, after
// letting the test know of it and holding it at the gate.
func (a *authServer) fault(w http.ResponseWriter, r *http.Request) bool {
	if r.PostForm.Get("grant_type") != "refresh_token" {
		return false
	}
	a.mu.Lock()
	gate, arrived := a.gate, a.arrived
	a.mu.Unlock()
	if arrived != nil {
		arrived <- r.PostForm
	}
	if gate != nil {
		<-gate
	}
	switch {
	case a.resets.Add(-1) >= 0:
		conn, _, _ := w.(http.Hijacker).Hijack()
		conn.Close()
	case a.unavailable.Add(-1) >= 0:
		http.Error(w, "try again later", http.StatusServiceUnavailable)
	case a.failRefresh.Load():
		desc := ""
		if a.echoOnFailure.Load() {
			desc = "refresh token " + r.PostForm.Get("refresh_token") + " was revoked"
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		_ = json.NewEncoder(w).Encode(map[string]string{"error": "invalid_grant", "error_description": desc})
	default:
		return false
	}
	return true
}

// issue mints a token as if an earlier login had granted scopes.
func (a *authServer) issue(withRefresh bool, scopes ...string) *oauth2.Token {
	return a.Issue(oauthtest.Grant{ClientID: testClient, Resource: a.resource, Scopes: scopes, Refresh: withRefresh})
}

// revoke makes the resource server reject tok from now on, as when it expires
// early.
func (a *authServer) revoke(tok *oauth2.Token) { a.Revoke(tok.AccessToken) }

// lookup returns the grant of an active access token, or nil.
func (a *authServer) lookup(access string) *grant {
	info, ok := a.Introspect(access)
	if !ok {
		return nil
	}
	return &grant{scopes: stepup.Scopes(info.Scopes), acr: info.ACR, claims: info.Claims}
}

func (a *authServer) setGate(gate chan struct{}) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.gate = gate
}

func (a *authServer) setArrived(c chan url.Values) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.arrived = c
}

// setGrantFor makes the person grant f(requested) from now on.
func (a *authServer) setGrantFor(f func(stepup.Scopes) stepup.Scopes) {
	a.SetConsent(func(requested []string, _ url.Values) ([]string, string) {
		return f(stepup.Scopes(requested)), ""
	})
}

// refreshForms returns the form of every refresh request received.
func (a *authServer) refreshForms() []url.Values {
	var forms []url.Values
	for _, tr := range a.TokenRequests() {
		if tr.Form.Get("grant_type") == "refresh_token" {
			forms = append(forms, tr.Form)
		}
	}
	return forms
}

func (a *authServer) authorizeQueries() []url.Values { return a.AuthorizationRequests() }
