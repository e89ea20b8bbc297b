package authcode_test

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/stepup-go/stepup/internal/oauthtest"
)

// authServer is the repository's strict test authorization server (see
// package oauthtest), as these tests configure it by default.
type authServer = oauthtest.Server

func newAuthServer(t *testing.T) *authServer {
	as := startAuthServer()
	t.Cleanup(as.Close)
	return as
}

// startAuthServer starts an authServer that knows the scopes read, write,
// admin and offline_access, authenticates clients by none or
// client_secret_basic, and authenticates people at urn:low unless urn:high
// is asked for; Close it with as.Close.
func startAuthServer() *authServer {
	return oauthtest.New(oauthtest.Config{
		ScopesSupported: []string{"read", "write", "admin", "offline_access"},
		AuthMethods:     []string{"none", "client_secret_basic"},
		ACRValues:       []string{"urn:low", "urn:high"},
	})
}

// preRegister adds a native client, as an administrator would.
func preRegister(as *authServer, id, secret, method string, redirectURIs ...string) {
	as.Register(oauthtest.Client{ID: id, Secret: secret, AuthMethod: method, RedirectURIs: redirectURIs})
}

// preRegisterWeb adds a web client, held to its exact redirect URIs, as an
// administrator would.
func preRegisterWeb(as *authServer, id string, redirectURIs ...string) {
	as.Register(oauthtest.Client{ID: id, AuthMethod: "none", RedirectURIs: redirectURIs, Web: true})
}

// resourceServer is a protected resource for the tests, in the manner of
// an MCP server: its metadata at the path-inserted well-known URL, 401 with
// resource_metadata for a request without a valid token, 403
// insufficient_scope with the scopes an operation needs (RFC 6750 §3.1),
// 401 insufficient_user_authentication when an operation needs a stronger
// authentication (RFC 9470).
type resourceServer struct {
	srv      *httptest.Server
	as       *authServer
	resource string // srv.URL + "/mcp"

	// Configuration; set before the first request.
	scopesSupported []string          // in the metadata; nil = none
	initialScope    string            // scope of the 401 to a request without token
	needs           map[string]string // path → scopes it needs
	needsACR        map[string]string // path → acr_values it needs
	needsClaims     map[string]string // path → claims it answers insufficient_claims with (JSON)
	noMetadata      bool              // no protected resource metadata, no resource_metadata in challenges: an MCP 2025-03-26 server

	mu    sync.Mutex
	moved *authServer // the authorization server it moved to, if it did
}

// moveTo makes as2 the resource's authorization server: its metadata names
// as2 alone, and only as2's tokens are accepted.
func (rs *resourceServer) moveTo(as2 *authServer) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	rs.moved = as2
	as2.SetResource(rs.resource)
}

func (rs *resourceServer) authServer() *authServer {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if rs.moved != nil {
		return rs.moved
	}
	return rs.as
}

func newResourceServer(t *testing.T, as *authServer) *resourceServer {
	rs := startResourceServer(as)
	t.Cleanup(rs.srv.Close)
	return rs
}

// startResourceServer starts a resourceServer for tokens of as; Close it
// with rs.srv.Close.
func startResourceServer(as *authServer) *resourceServer {
	rs := &resourceServer{as: as, needs: map[string]string{}, needsACR: map[string]string{}, needsClaims: map[string]string{}}
	rs.srv = httptest.NewServer(http.HandlerFunc(rs.serve))
	rs.resource = rs.srv.URL + "/mcp"
	as.SetResource(rs.resource)
	return rs
}

func (rs *resourceServer) metadataURL() string {
	return rs.srv.URL + "/.well-known/oauth-protected-resource/mcp"
}

func (rs *resourceServer) serve(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/.well-known/oauth-protected-resource/mcp" && !rs.noMetadata {
		m := map[string]any{"resource": rs.resource, "authorization_servers": []string{rs.authServer().IssuerID()}}
		if rs.scopesSupported != nil {
			m["scopes_supported"] = rs.scopesSupported
		}
		writeJSON(w, http.StatusOK, m)
		return
	}
	if !strings.HasPrefix(r.URL.Path, "/mcp") {
		http.NotFound(w, r)
		return
	}
	at, hasToken := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	meta := fmt.Sprintf("resource_metadata=%q", rs.metadataURL())
	if rs.noMetadata {
		meta = `realm="mcp"`
	}
	if !hasToken {
		ch := "Bearer " + meta
		if rs.initialScope != "" {
			ch += fmt.Sprintf(", scope=%q", rs.initialScope)
		}
		w.Header().Set("WWW-Authenticate", ch)
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	tok, ok := rs.authServer().Introspect(at)
	if !ok || tok.Resource != rs.resource {
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token", `+meta)
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	if need := rs.needs[r.URL.Path]; need != "" {
		for _, s := range strings.Fields(need) {
			if !slices.Contains(tok.Scopes, s) {
				w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer error="insufficient_scope", scope=%q, %s`, need, meta))
				w.WriteHeader(http.StatusForbidden)
				return
			}
		}
	}
	if acr := rs.needsACR[r.URL.Path]; acr != "" && !slices.Contains(strings.Fields(acr), tok.ACR) {
		w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer error="insufficient_user_authentication", acr_values=%q, max_age=0, %s`, acr, meta))
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	if claims := rs.needsClaims[r.URL.Path]; claims != "" && tok.ACR != "urn:high" {
		w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer error="insufficient_claims", claims=%q, %s`,
			base64.StdEncoding.EncodeToString([]byte(claims)), meta))
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	fmt.Fprintf(w, "ok %s", r.URL.Path)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
