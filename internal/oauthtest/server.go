// Package oauthtest is an OAuth 2.0 authorization server that runs in the
// process, on loopback, for the tests of every package of the repository,
// its demo and its comparison with other clients. It behaves as a strict
// real server does wherever a client's behaviour depends on it:
//
//   - RFC 8414 metadata (or, as an OpenID Provider, OpenID Connect Discovery
//     1.0 metadata only);
//   - the authorization code grant with PKCE S256 only (RFC 7636 §4.6: the
//     verifier is checked), state required and echoed, the RFC 9207 iss
//     parameter when configured;
//   - the RFC 8707 resource parameter required in the authorization request,
//     equal in the token request, and bound to the tokens it issues;
//   - a refresh token only when offline_access was granted, rotated on every
//     use, and a reused one revokes its whole grant (RFC 9700 §4.14.2);
//   - a refresh never widens scope (RFC 6749 §6): a scope parameter beyond
//     the original grant is invalid_scope;
//   - consent that approves at once by default, and can decline, grant part
//     of the scopes, or ask a person through an HTML page;
//   - dynamic client registration (RFC 7591) and pre-registered clients,
//     with client_secret_basic, client_secret_post or none; a native client
//     (application_type native) may use any loopback port (RFC 8252 §7.3), a
//     web client only its exact redirect URIs (OpenID Connect Dynamic Client
//     Registration 1.0 §2);
//   - pushed authorization requests (RFC 9126) when configured;
//   - for clients with no person: the client credentials grant (RFC 6749
//     §4.4), private_key_jwt client authentication (RFC 7523 §3, each jti
//     once), the JWT bearer grant (RFC 7523 §2.1) for the assertions of
//     trusted workload issuers and the ID-JAGs of trusted IdPs.
//
// It counts what tests and a comparison need: consent prompts, token
// requests by grant type, registrations, reused refresh tokens, and keeps
// every request. The access tokens are opaque; resource servers in the same
// process check them with [Server.Verify] or [Server.Introspect], as they
// would by introspection.
//
// The token endpoint dispatches on grant_type in one place (token.go), and
// authenticates clients in another: a new grant (RFC 8693 token exchange,
// say) is a case there with a field of [Config] that enables it, and
// sender-constrained tokens (DPoP, RFC 9449) a check beside the client's
// authentication.
package oauthtest

import (
	"crypto"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"
)

// DefaultAccessTokenTTL is the lifetime of the access tokens a [Server]
// issues unless [Config.AccessTokenTTL] says otherwise.
const DefaultAccessTokenTTL = time.Hour

// Config configures a [Server]. The zero value is usable. A [Server] embeds
// its Config: tests may change a field after [New] and before the request
// that depends on it, never while requests are being served.
type Config struct {
	// Issuer is the issuer identifier the metadata and the iss parameter
	// name. Empty means the server's URL.
	Issuer string
	// Base is the URL the endpoints are under. Empty means the server's
	// URL; a test sets another to put them behind another origin.
	Base string
	// EndpointQuery is appended to the authorization endpoint's URL in the
	// metadata, as a tenant's policy query is.
	EndpointQuery string

	// ScopesSupported are the scopes the server knows; an authorization
	// request for another is invalid_scope. Empty means any scope.
	ScopesSupported []string
	// AuthMethods are the token_endpoint_auth_methods_supported. Empty
	// means client_secret_basic, client_secret_post and none.
	AuthMethods []string
	// ACRValues are the acr_values_supported, in the metadata with
	// claims_parameter_supported. The first is the acr of an
	// authentication that asked for none; a requested one is used when
	// listed, or when the list is empty. Empty means no acr at all.
	ACRValues []string

	// AccessTokenTTL is the lifetime of access tokens. Zero means
	// DefaultAccessTokenTTL.
	AccessTokenTTL time.Duration
	// TokenMark, when set, is part of every code and token the server
	// mints, so that a test can look for tokens in errors and logs.
	TokenMark string

	// Clients are pre-registered clients.
	Clients []Client

	// NoPKCE leaves code_challenge_methods_supported out of the metadata,
	// as servers that predate RFC 7636 do; PKCE is required all the same.
	NoPKCE bool
	// NoRegistration disables the registration endpoint.
	NoRegistration bool
	// CIMD advertises client_id_metadata_document_supported: an https
	// client_id is accepted without registration, with a loopback
	// redirect URI.
	CIMD bool
	// IssParameter advertises and sends the RFC 9207 iss parameter.
	IssParameter bool
	// SendIss is sent as iss instead of the issuer: a mix-up.
	SendIss string
	// SendState is sent as state instead of the request's.
	SendState string
	// OpenID makes the server an OpenID Provider as panva's oidc-provider
	// is: metadata only at the OpenID Connect Discovery location, openid
	// among its scopes, acr_values, max_age and claims refused without the
	// openid scope, offline_access dropped without prompt=consent (OpenID
	// Connect Core 1.0 §11).
	OpenID bool
	// PAR enables the pushed authorization request endpoint (RFC 9126).
	PAR bool
	// PARURL is the pushed authorization request endpoint the metadata
	// names. Empty means Base + "/par".
	PARURL string
	// RefuseResource refuses the RFC 8707 resource parameter and binds
	// tokens to the one resource the server serves, as Entra ID v2.0 does.
	RefuseResource bool

	// RefreshAlways issues a refresh token with every grant, offline_access
	// or not, as many servers do.
	RefreshAlways bool
	// NoRotation keeps a refresh token valid after use: the response to a
	// refresh carries no new one.
	NoRotation bool
	// RefreshNeedsResource refuses a refresh without the RFC 8707 resource
	// parameter, as servers that bind every token to a resource do.
	RefreshNeedsResource bool
	// SingleGrant keeps one grant at a time, as a server with one session
	// per user does: each grant made (by a code, a refresh or
	// [Server.Issue]) supersedes the earlier ones, whose access tokens stop
	// working and whose refresh tokens count as used, so that presenting
	// one is a reuse that revokes the grant.
	SingleGrant bool

	// GrantTypesSupported are the grant types the server serves and lists
	// in grant_types_supported. Empty means every one it implements:
	// authorization_code, refresh_token, client_credentials and the JWT
	// bearer grant (RFC 7523).
	GrantTypesSupported []string
	// AssertionAudience is the audience a private_key_jwt client assertion
	// must name (RFC 7523 §3). Empty means the issuer.
	AssertionAudience string
	// RefuseScopes refuses a client_credentials or JWT bearer request for
	// a scope with the error code it maps to (invalid_scope,
	// unauthorized_client, ...), as a server's policy for the client does.
	RefuseScopes map[string]string
	// RefreshWithClientGrants sends a refresh token with the client
	// credentials and JWT bearer grants, as some servers do although RFC
	// 6749 §4.4.3 says none SHOULD be with client credentials; the client
	// must not use it.
	RefreshWithClientGrants bool

	// Consent answers the authorization requests until [Server.SetConsent]
	// says otherwise. Nil means [Approve].
	Consent Consent
	// TokenHook, when set, sees each token request after its form is
	// parsed and before it is served; when it returns true it has answered
	// the request itself. Tests inject faults with it (a stall, a 503, a
	// dropped connection).
	TokenHook func(w http.ResponseWriter, r *http.Request) bool
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
	// "client_secret_basic", "client_secret_post", "private_key_jwt" or
	// "none". Empty means
	// client_secret_basic with a secret and none without.
	AuthMethod string
	// RedirectURIs are the registered redirect URIs.
	RedirectURIs []string
	// Key verifies the client assertions of a private_key_jwt client
	// (RFC 7523 §2.2).
	Key crypto.PublicKey
	// Web holds the client to its exact redirect URIs. Otherwise it is a
	// native client, whose loopback redirect URI matches any port (RFC
	// 8252 §7.3).
	Web bool
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
	// Config is the server's configuration; see [Config] on changing it.
	Config
	// URL is the server's own URL: http://127.0.0.1:port, no path.
	URL string
	// HTTP is the underlying test server; a test may wrap its handler
	// before the first request.
	HTTP *httptest.Server

	mu            sync.Mutex
	clients       map[string]*Client
	resources     []string
	idjag         map[string]crypto.PublicKey // trusted IdPs, by issuer
	workloads     map[string]crypto.PublicKey // trusted issuers of JWT bearer assertions, by issuer
	jtis          map[string]bool             // the jti of every client assertion accepted
	codes         map[string]*codeGrant
	access        map[string]*accessToken
	refresh       map[string]*refreshToken
	pushed        map[string]pushedRequest
	consent       Consent
	askPersonNext bool                // SetConsent(nil): the consent page asks a person
	interactive   map[string]*pending // consent pages waiting for a person
	stats         Stats
	log           requestLog
}

// New starts a server on 127.0.0.1. Close it when done.
func New(cfg Config) *Server {
	s := &Server{
		Config:      cfg,
		clients:     make(map[string]*Client),
		codes:       make(map[string]*codeGrant),
		access:      make(map[string]*accessToken),
		refresh:     make(map[string]*refreshToken),
		pushed:      make(map[string]pushedRequest),
		consent:     cfg.Consent,
		interactive: make(map[string]*pending),
		stats:       Stats{TokenRequests: map[string]int{}},
	}
	if s.consent == nil {
		s.consent = Approve()
	}
	for _, c := range cfg.Clients {
		c.RedirectURIs = slices.Clone(c.RedirectURIs)
		s.clients[c.ID] = &c
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/oauth-authorization-server", func(w http.ResponseWriter, r *http.Request) {
		if s.OpenID {
			http.NotFound(w, r)
			return
		}
		s.serveMetadata(w, r)
	})
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		if !s.OpenID {
			http.NotFound(w, r)
			return
		}
		s.serveMetadata(w, r)
	})
	mux.HandleFunc("GET /authorize", s.serveAuthorize)
	mux.HandleFunc("POST /authorize/decision", s.serveDecision)
	mux.HandleFunc("POST /par", s.servePAR)
	mux.HandleFunc("POST /token", s.serveToken)
	mux.HandleFunc("POST /register", s.serveRegister)
	s.HTTP = httptest.NewServer(mux)
	s.URL = s.HTTP.URL
	return s
}

// Start is [New] for a test: the server is closed when t ends.
func Start(t testing.TB, cfg Config) *Server {
	s := New(cfg)
	t.Cleanup(s.Close)
	return s
}

// Close shuts the server down.
func (s *Server) Close() { s.HTTP.Close() }

// IssuerID returns the issuer identifier.
func (s *Server) IssuerID() string {
	if s.Issuer != "" {
		return s.Issuer
	}
	return s.URL
}

func (s *Server) base() string {
	if s.Base != "" {
		return s.Base
	}
	return s.URL
}

// AllowResource adds uri to the RFC 8707 resources the server issues tokens
// for. A request naming another resource is invalid_target (RFC 8707 §2).
// With none allowed, any resource is.
func (s *Server) AllowResource(uri string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !slices.Contains(s.resources, uri) {
		s.resources = append(s.resources, uri)
	}
}

// SetResource makes uri the one resource the server issues tokens for,
// as when a resource moved to it.
func (s *Server) SetResource(uri string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.resources = []string{uri}
}

// resourceKnown reports whether tokens may be issued for uri. Call with mu
// held.
func (s *Server) resourceKnown(uri string) bool {
	return len(s.resources) == 0 || slices.Contains(s.resources, uri)
}

// ownResource is the resource tokens are bound to when the request may not
// name one (RefuseResource). Call with mu held.
func (s *Server) ownResource() string {
	if len(s.resources) == 0 {
		return ""
	}
	return s.resources[0]
}

// AuthorizationEndpoint returns the authorization endpoint's URL.
func (s *Server) AuthorizationEndpoint() string { return s.base() + "/authorize" }

// TokenEndpoint returns the token endpoint's URL.
func (s *Server) TokenEndpoint() string { return s.base() + "/token" }

// RegistrationEndpoint returns the registration endpoint's URL.
func (s *Server) RegistrationEndpoint() string { return s.base() + "/register" }

func (s *Server) grantTypes() []string {
	if len(s.GrantTypesSupported) == 0 {
		return []string{"authorization_code", "refresh_token", "client_credentials", grantJWTBearer}
	}
	return s.GrantTypesSupported
}

func (s *Server) methods() []string {
	if len(s.AuthMethods) == 0 {
		return []string{"client_secret_basic", "client_secret_post", "none"}
	}
	return s.AuthMethods
}

// scopes returns the scopes the server knows, nil for any.
func (s *Server) scopes() []string {
	scopes := s.ScopesSupported
	if s.OpenID && len(scopes) > 0 && !slices.Contains(scopes, "openid") {
		scopes = append(slices.Clip(scopes), "openid")
	}
	return scopes
}

func (s *Server) serveMetadata(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.stats.MetadataRequests++
	s.mu.Unlock()
	m := map[string]any{
		"issuer":                                s.IssuerID(),
		"authorization_endpoint":                s.AuthorizationEndpoint() + s.EndpointQuery,
		"token_endpoint":                        s.TokenEndpoint(),
		"response_types_supported":              []string{"code"},
		"grant_types_supported":                 s.grantTypes(),
		"token_endpoint_auth_methods_supported": s.methods(),
	}
	if scopes := s.scopes(); len(scopes) > 0 {
		m["scopes_supported"] = scopes
	}
	if len(s.ACRValues) > 0 {
		m["acr_values_supported"] = s.ACRValues
		m["claims_parameter_supported"] = true
	}
	if !s.NoPKCE {
		m["code_challenge_methods_supported"] = []string{"S256"}
	}
	if !s.NoRegistration {
		m["registration_endpoint"] = s.RegistrationEndpoint()
	}
	if s.CIMD {
		m["client_id_metadata_document_supported"] = true
	}
	if s.IssParameter {
		m["authorization_response_iss_parameter_supported"] = true
	}
	if s.PAR {
		m["pushed_authorization_request_endpoint"] = s.base() + "/par"
		if s.PARURL != "" {
			m["pushed_authorization_request_endpoint"] = s.PARURL
		}
	}
	writeJSON(w, http.StatusOK, m)
}

func (s *Server) observe(e Event) {
	if s.Observe != nil {
		s.Observe(e)
	}
}

func (s *Server) accessTTL() time.Duration {
	if s.AccessTokenTTL > 0 {
		return s.AccessTokenTTL
	}
	return DefaultAccessTokenTTL
}

// mint returns a new code or token of kind ("code", "at", "rt", ...):
// 32 random bytes, base64url, with the TokenMark. Call with mu held.
func (s *Server) mint(kind string) string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	mark := ""
	if s.TokenMark != "" {
		mark = s.TokenMark + "-"
	}
	return kind + "-" + mark + base64.RawURLEncoding.EncodeToString(b)
}

// secret returns 32 random bytes, base64url: client IDs and secrets.
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

// oauthError writes an RFC 6749 §5.2 error response.
func oauthError(w http.ResponseWriter, status int, code, desc string) {
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Basic realm="token"`)
	}
	m := map[string]string{"error": code}
	if desc != "" {
		m["error_description"] = desc
	}
	writeJSON(w, status, m)
}
