package storetest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/stepup-go/stepup"
)

// AuthServer is an authorization server and the protected resource it
// guards, in one loopback HTTP server, as strict as the strict real ones:
//
//   - POST /token redeems a refresh token (RFC 6749 §6) and rotates it:
//     the old one is spent, and presenting a spent one again is taken as
//     theft and revokes the grant (OAuth 2.1 §4.3.1, RFC 9700 §4.14.2).
//     It requires the RFC 8707 resource parameter.
//   - POST /consent stands for an authorization code flow in which the
//     user consents at once: it issues a new grant for the scope asked.
//   - GET /mcp/{scope} needs the current access token, unexpired, with
//     scope {scope}: else 401 invalid_token or 403 insufficient_scope
//     (RFC 6750 §3.1). It answers "gen N", the grant's generation.
//
// One grant exists at a time; each refresh and each consent makes the next
// generation.
type AuthServer struct {
	srv *httptest.Server

	mu          sync.Mutex
	gen         int
	access      string
	refresh     string
	scopes      stepup.Scopes
	expired     bool
	revoked     bool
	spent       map[string]bool // refresh tokens redeemed or superseded
	refreshes   int
	escalations int
}

// NewAuthServer starts an AuthServer on loopback, closed when the test
// ends.
func NewAuthServer(t testing.TB) *AuthServer {
	a := &AuthServer{spent: make(map[string]bool)}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /token", a.token)
	mux.HandleFunc("POST /consent", a.consent)
	mux.HandleFunc("GET /mcp/{scope}", a.resource)
	a.srv = httptest.NewServer(mux)
	t.Cleanup(a.srv.Close)
	return a
}

// URL is the server's base URL, also its issuer identifier.
func (a *AuthServer) URL() string { return a.srv.URL }

// Resource is the RFC 8707 resource the server's tokens are for.
func (a *AuthServer) Resource() string { return a.srv.URL + "/mcp" }

// Key is the key under which storm children share the server's grant.
func (a *AuthServer) Key() stepup.StoreKey {
	return stepup.StoreKey{Resource: a.Resource(), Issuer: a.URL()}
}

// Issue makes a new grant for scopes, as a first authorization would,
// without counting it as an escalation, and returns it.
func (a *AuthServer) Issue(scopes ...string) *stepup.SavedGrant {
	a.mu.Lock()
	defer a.mu.Unlock()
	tok := a.newGrantLocked(stepup.Scopes(nil).Union(scopes))
	return &stepup.SavedGrant{Token: tok, Requested: a.scopes, Granted: a.scopes, Issuer: a.URL()}
}

// ExpireAccessToken makes the current access token rejected as expired
// (401 invalid_token) although its holders think it valid.
func (a *AuthServer) ExpireAccessToken() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.expired = true
}

// Counts returns the refreshes and escalations served, and whether the
// grant was revoked.
func (a *AuthServer) Counts() (refreshes, escalations int, revoked bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.refreshes, a.escalations, a.revoked
}

// Generation returns the current grant's generation.
func (a *AuthServer) Generation() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.gen
}

func (a *AuthServer) newGrantLocked(scopes stepup.Scopes) *oauth2.Token {
	if a.refresh != "" {
		a.spent[a.refresh] = true
	}
	a.gen++
	a.access = fmt.Sprintf("at-%d-%d", a.gen, time.Now().UnixNano())
	a.refresh = fmt.Sprintf("rt-%d-%d", a.gen, time.Now().UnixNano())
	a.scopes = scopes
	a.expired = false
	tok := &oauth2.Token{AccessToken: a.access, TokenType: "Bearer", RefreshToken: a.refresh, Expiry: time.Now().Add(time.Hour)}
	return tok.WithExtra(map[string]any{"scope": scopes.String()})
}

func (a *AuthServer) token(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		oauthError(w, http.StatusBadRequest, "invalid_request")
		return
	}
	if r.PostForm.Get("grant_type") != "refresh_token" {
		oauthError(w, http.StatusBadRequest, "unsupported_grant_type")
		return
	}
	if r.PostForm.Get("resource") != a.Resource() {
		oauthError(w, http.StatusBadRequest, "invalid_target")
		return
	}
	rt := r.PostForm.Get("refresh_token")
	a.mu.Lock()
	defer a.mu.Unlock()
	switch {
	case a.revoked:
		oauthError(w, http.StatusBadRequest, "invalid_grant")
	case rt != "" && rt == a.refresh:
		a.refreshes++
		a.writeToken(w, a.newGrantLocked(a.scopes))
	case a.spent[rt]:
		a.revoked = true
		oauthError(w, http.StatusBadRequest, "invalid_grant")
	default:
		oauthError(w, http.StatusBadRequest, "invalid_grant")
	}
}

func (a *AuthServer) consent(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		oauthError(w, http.StatusBadRequest, "invalid_request")
		return
	}
	scopes, err := stepup.ParseScopes(r.PostForm.Get("scope"))
	if err != nil {
		oauthError(w, http.StatusBadRequest, "invalid_scope")
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.escalations++
	a.writeToken(w, a.newGrantLocked(scopes))
}

func (a *AuthServer) writeToken(w http.ResponseWriter, tok *oauth2.Token) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(map[string]any{
		"access_token":  tok.AccessToken,
		"token_type":    "Bearer",
		"refresh_token": tok.RefreshToken,
		"expires_in":    3600,
		"scope":         a.scopes.String(),
	})
}

func (a *AuthServer) resource(w http.ResponseWriter, r *http.Request) {
	scope := r.PathValue("scope")
	tok, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	a.mu.Lock()
	defer a.mu.Unlock()
	switch {
	case a.revoked || a.expired || tok != a.access:
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
		w.WriteHeader(http.StatusUnauthorized)
	case !a.scopes.Contains(scope):
		w.Header().Set("WWW-Authenticate", `Bearer error="insufficient_scope", scope="`+scope+`"`)
		w.WriteHeader(http.StatusForbidden)
	default:
		_, _ = w.Write([]byte("gen " + strconv.Itoa(a.gen)))
	}
}

func oauthError(w http.ResponseWriter, status int, code string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": code})
}
