// Package authserver is an OAuth 2.0 authorization server that runs in the
// process, on loopback, for stepup's end-to-end tests, its demo and its
// comparison with other clients. It behaves as a real server does wherever a
// client's behaviour depends on it:
//
//   - the authorization code grant with PKCE S256 only (RFC 7636 §4.6: the
//     verifier is checked), state echoed, the RFC 9207 iss parameter sent;
//   - the RFC 8707 resource parameter required in the authorization and the
//     token requests, equal in both, and bound to the tokens it issues;
//   - a refresh token only when offline_access was granted, rotated on every
//     use, and a reused one revokes its whole grant (RFC 9700 §4.14.2);
//   - a refresh never widens scope (RFC 6749 §6): a scope parameter beyond
//     the original grant is invalid_scope;
//   - consent that approves at once by default, and can decline, grant part
//     of the scopes, or ask a person through an HTML page;
//   - dynamic client registration (RFC 7591) and pre-registered clients,
//     with client_secret_basic, client_secret_post or none.
//
// It counts what a comparison needs: consent prompts, and token requests by
// grant type. The access tokens are opaque; resource servers in the same
// process check them with [Server.Verify], as they would by introspection.
package authserver

import (
	"crypto"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"time"
)

// DefaultAccessTokenTTL is the lifetime of the access tokens a [Server]
// issues unless [Config.AccessTokenTTL] says otherwise.
const DefaultAccessTokenTTL = time.Hour

// Config configures a [Server]. The zero value is usable.
type Config struct {
	// ScopesSupported are the scopes the server knows; an authorization
	// request for another is invalid_scope. Empty means any scope.
	ScopesSupported []string

	// AccessTokenTTL is the lifetime of access tokens. Zero means
	// DefaultAccessTokenTTL.
	AccessTokenTTL time.Duration

	// Clients are pre-registered clients.
	Clients []Client

	// Observe, when set, is called for each step the server takes (an
	// authorization request, a consent, a token issued), synchronously,
	// with no lock held. The demo narrates with it.
	Observe func(Event)
}

// Client is a registered client.
type Client struct {
	ID     string
	Secret string // empty for a public client
	// AuthMethod is how the client authenticates at the token endpoint:
	// "client_secret_basic", "client_secret_post" or "none". Empty means
	// client_secret_basic with a secret and none without.
	AuthMethod string
	// RedirectURIs are the registered redirect URIs. A loopback one
	// matches any port (RFC 8252 §7.3).
	RedirectURIs []string
}

func (c *Client) authMethod() string {
	switch {
	case c.AuthMethod != "":
		return c.AuthMethod
	case c.Secret != "":
		return "client_secret_basic"
	}
	return "none"
}

// Event is one step the server took, for [Config.Observe].
type Event struct {
	// Kind is "authorize", "consent", "declined", "token", "refused" or
	// "register".
	Kind string
	// GrantType is the token request's grant_type, for Kind "token" and
	// "refused".
	GrantType string
	// Scopes are the scopes requested ("authorize"), granted ("consent",
	// "token") or refused ("declined").
	Scopes []string
	// Detail says more in words, e.g. why a request was refused.
	Detail string
}

// Server is a running authorization server. Its methods are safe for
// concurrent use.
type Server struct {
	// URL is the issuer identifier: http://127.0.0.1:port, no path.
	URL string

	cfg Config
	srv *httptest.Server

	mu          sync.Mutex
	clients     map[string]*Client
	resources   map[string]bool
	idjag       map[string]crypto.PublicKey // trusted IdPs, by issuer
	codes       map[string]*codeGrant
	access      map[string]*accessToken
	refresh     map[string]*refreshToken
	consent     Consent
	interactive map[string]*pending // consent pages waiting for a person
	stats       Stats
}

// New starts a server on 127.0.0.1. Close it when done.
func New(cfg Config) *Server {
	s := &Server{
		cfg:         cfg,
		clients:     make(map[string]*Client),
		resources:   make(map[string]bool),
		codes:       make(map[string]*codeGrant),
		access:      make(map[string]*accessToken),
		refresh:     make(map[string]*refreshToken),
		consent:     Approve(),
		interactive: make(map[string]*pending),
		stats:       Stats{TokenRequests: map[string]int{}},
	}
	for _, c := range cfg.Clients {
		c.RedirectURIs = slices.Clone(c.RedirectURIs)
		s.clients[c.ID] = &c
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/oauth-authorization-server", s.serveMetadata)
	mux.HandleFunc("GET /authorize", s.serveAuthorize)
	mux.HandleFunc("POST /authorize/decision", s.serveDecision)
	mux.HandleFunc("POST /token", s.serveToken)
	mux.HandleFunc("POST /register", s.serveRegister)
	s.srv = httptest.NewServer(mux)
	s.URL = s.srv.URL
	return s
}

// Close shuts the server down.
func (s *Server) Close() { s.srv.Close() }

// AllowResource adds uri to the RFC 8707 resources the server issues tokens
// for. A request naming another resource is invalid_target (RFC 8707 §2).
func (s *Server) AllowResource(uri string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.resources[uri] = true
}

// AuthorizationEndpoint and TokenEndpoint return the endpoints' URLs.
func (s *Server) AuthorizationEndpoint() string { return s.URL + "/authorize" }

// TokenEndpoint returns the token endpoint's URL.
func (s *Server) TokenEndpoint() string { return s.URL + "/token" }

// metadata is the RFC 8414 §2 document.
type metadata struct {
	Issuer                            string   `json:"issuer"`
	AuthorizationEndpoint             string   `json:"authorization_endpoint"`
	TokenEndpoint                     string   `json:"token_endpoint"`
	RegistrationEndpoint              string   `json:"registration_endpoint"`
	ScopesSupported                   []string `json:"scopes_supported,omitempty"`
	ResponseTypesSupported            []string `json:"response_types_supported"`
	GrantTypesSupported               []string `json:"grant_types_supported"`
	TokenEndpointAuthMethodsSupported []string `json:"token_endpoint_auth_methods_supported"`
	CodeChallengeMethodsSupported     []string `json:"code_challenge_methods_supported"`
	IssParameterSupported             bool     `json:"authorization_response_iss_parameter_supported"`
}

func (s *Server) serveMetadata(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, metadata{
		Issuer:                            s.URL,
		AuthorizationEndpoint:             s.AuthorizationEndpoint(),
		TokenEndpoint:                     s.TokenEndpoint(),
		RegistrationEndpoint:              s.URL + "/register",
		ScopesSupported:                   s.cfg.ScopesSupported,
		ResponseTypesSupported:            []string{"code"},
		GrantTypesSupported:               []string{"authorization_code", "refresh_token", "client_credentials", "urn:ietf:params:oauth:grant-type:jwt-bearer"},
		TokenEndpointAuthMethodsSupported: []string{"client_secret_basic", "client_secret_post", "none"},
		CodeChallengeMethodsSupported:     []string{"S256"},
		IssParameterSupported:             true,
	})
}

func (s *Server) observe(e Event) {
	if s.cfg.Observe != nil {
		s.cfg.Observe(e)
	}
}

func (s *Server) accessTTL() time.Duration {
	if s.cfg.AccessTokenTTL > 0 {
		return s.cfg.AccessTokenTTL
	}
	return DefaultAccessTokenTTL
}

// secret returns 32 random bytes, base64url: codes, tokens, client IDs.
func secret() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	return base64.RawURLEncoding.EncodeToString(b)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
