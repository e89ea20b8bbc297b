package authcode

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"time"

	"github.com/stepup-go/stepup/discovery"
	"github.com/stepup-go/stepup/internal/netguard"
)

// The token endpoint client authentication methods a [Registration] may
// use (RFC 7591 §2; RFC 6749 §2.3.1).
const (
	// AuthMethodNone: a public client, identified by client_id alone.
	AuthMethodNone = "none"
	// AuthMethodBasic: client_id and client_secret in an HTTP Basic
	// Authorization header.
	AuthMethodBasic = "client_secret_basic"
	// AuthMethodPost: client_id and client_secret in the request body.
	AuthMethodPost = "client_secret_post"
)

// Registration identifies a client at an authorization server.
type Registration struct {
	// Issuer is the issuer identifier of the authorization server the
	// registration is for. A pre-registered client ([Escalator.Client])
	// with Issuer "" is used with any authorization server.
	Issuer string
	// ClientID is the client identifier (RFC 6749 §2.2): for a client ID
	// metadata document, its https URL.
	ClientID string
	// ClientSecret is the client secret, "" for a public client.
	ClientSecret string
	// AuthMethod is how the client authenticates at the token endpoint:
	// [AuthMethodBasic], [AuthMethodPost] or [AuthMethodNone]. "" lets
	// the Escalator choose: none without secret, else client_secret_basic
	// unless the server lists only client_secret_post.
	AuthMethod string
	// RedirectURIs are the redirect URIs registered; empty means any the
	// server accepts.
	RedirectURIs []string
	// SecretExpiresAt is when the client secret expires, zero for never
	// (RFC 7591 §3.2.1): the client is registered again after.
	SecretExpiresAt time.Time
	// ApplicationType is the client's application_type (OpenID Connect
	// Dynamic Client Registration 1.0 §2), native or web, as registered;
	// "" when the registration did not say, as those of earlier versions
	// of this package. Only a native client's loopback redirect URI is
	// taken to allow any port: for another, a login on another port
	// registers again.
	ApplicationType string
}

// usable reports whether r may be used with redirectURI at now.
func (r *Registration) usable(redirectURI string, now time.Time) bool {
	if r.ClientID == "" || !r.SecretExpiresAt.IsZero() && now.Add(time.Minute).After(r.SecretExpiresAt) {
		return false
	}
	if len(r.RedirectURIs) == 0 {
		return true
	}
	for _, u := range r.RedirectURIs {
		if u == redirectURI || r.ApplicationType == "native" && sameLoopback(u, redirectURI) {
			return true
		}
	}
	return false
}

// sameLoopback reports whether redirect URIs a and b are the same
// loopback one but for the port, which RFC 8252 §7.3 requires
// authorization servers to let a native client choose, since its listener
// gets the one that is free.
func sameLoopback(a, b string) bool {
	ua, err1 := url.Parse(a)
	ub, err2 := url.Parse(b)
	return err1 == nil && err2 == nil && ua.Scheme == "http" && ub.Scheme == "http" &&
		ua.Hostname() == ub.Hostname() && netguard.IsLoopbackHost(ua.Hostname()) &&
		ua.EscapedPath() == ub.EscapedPath() && ua.RawQuery == ub.RawQuery
}

// RegistrationStore keeps the registrations an [Escalator] made, one per
// issuer: MCP forbids assuming that a client registered at one
// authorization server is valid at another. Implementations must be safe
// for concurrent use.
type RegistrationStore interface {
	// LoadRegistration returns the registration for issuer, or nil and no
	// error when there is none.
	LoadRegistration(ctx context.Context, issuer string) (*Registration, error)
	// SaveRegistration keeps r under r.Issuer, replacing any other.
	SaveRegistration(ctx context.Context, r *Registration) error
}

// MemoryRegistrations is a [RegistrationStore] in memory. The zero value
// is ready to use.
type MemoryRegistrations struct {
	mu sync.Mutex
	m  map[string]Registration
}

// LoadRegistration returns a copy of the registration for issuer.
func (s *MemoryRegistrations) LoadRegistration(_ context.Context, issuer string) (*Registration, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.m[issuer]
	if !ok {
		return nil, nil
	}
	r.RedirectURIs = slices.Clone(r.RedirectURIs)
	return &r, nil
}

// SaveRegistration keeps a copy of r.
func (s *MemoryRegistrations) SaveRegistration(_ context.Context, r *Registration) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = make(map[string]Registration)
	}
	c := *r
	c.RedirectURIs = slices.Clone(r.RedirectURIs)
	s.m[r.Issuer] = c
	return nil
}

// chooseAuthMethod picks how a client authenticates at as's token
// endpoint when nobody said: none without a secret; with one,
// client_secret_basic, which RFC 8414 §2 makes the default and RFC 6749
// §2.3.1 requires servers to support, unless the server lists
// client_secret_post and not basic.
func chooseAuthMethod(as *discovery.AuthServer, hasSecret bool) string {
	if !hasSecret {
		return AuthMethodNone
	}
	m := as.TokenEndpointAuthMethodsSupported
	if slices.Contains(m, AuthMethodPost) && !slices.Contains(m, AuthMethodBasic) {
		return AuthMethodPost
	}
	return AuthMethodBasic
}

// registrationMethod picks the method to ask for in a dynamic
// registration: none, the way of a native app (RFC 8252 §8.4), when the
// server supports it; else a secret, in the header or the body. An
// absent list means client_secret_basic alone (RFC 8414 §2).
func registrationMethod(as *discovery.AuthServer) string {
	m := as.TokenEndpointAuthMethodsSupported
	switch {
	case len(m) == 0:
		return AuthMethodBasic
	case slices.Contains(m, AuthMethodNone):
		return AuthMethodNone
	case slices.Contains(m, AuthMethodBasic) || !slices.Contains(m, AuthMethodPost):
		return AuthMethodBasic
	}
	return AuthMethodPost
}

// maxRegistrationBody bounds a registration response; real ones are under
// a few kilobytes.
const maxRegistrationBody = 64 << 10

// clientMetadata is the client metadata of a registration request
// (RFC 7591 §2).
type clientMetadata struct {
	RedirectURIs            []string `json:"redirect_uris"`
	TokenEndpointAuthMethod string   `json:"token_endpoint_auth_method"`
	GrantTypes              []string `json:"grant_types"`
	ResponseTypes           []string `json:"response_types"`
	ClientName              string   `json:"client_name,omitempty"`
	ApplicationType         string   `json:"application_type"`
}

// applicationType returns the application_type to register for
// redirectURI (OpenID Connect Dynamic Client Registration 1.0 §2, which
// MCP requires of every registration): native for a loopback or
// private-use scheme redirect URI, the ones of a program on the person's
// own machine (RFC 8252 §7), so that the server lets the loopback port
// vary as RFC 8252 §7.3 asks of it; servers hold a web client to the
// exact URI registered. web for an http(s) redirect URI on another host.
func applicationType(redirectURI string) string {
	u, err := url.Parse(redirectURI)
	if err == nil && (u.Scheme == "https" || u.Scheme == "http") && !netguard.IsLoopbackHost(u.Hostname()) {
		return "web"
	}
	return "native"
}

// registrationResponse is a client information response (RFC 7591 §3.2.1)
// or an error response (§3.2.2).
type registrationResponse struct {
	ClientID                string          `json:"client_id"`
	ApplicationType         string          `json:"application_type"`
	ClientSecret            string          `json:"client_secret"`
	ClientSecretExpiresAt   json.Number     `json:"client_secret_expires_at"`
	TokenEndpointAuthMethod string          `json:"token_endpoint_auth_method"`
	RedirectURIs            json.RawMessage `json:"redirect_uris"`
	Error                   string          `json:"error"`
	ErrorDescription        string          `json:"error_description"`
}

// register registers a client at as's registration endpoint (RFC 7591
// §3) for redirectURI. The request is not retried: a retry after a lost
// answer would register a second client.
func register(ctx context.Context, hc *http.Client, as *discovery.AuthServer, redirectURI, name string) (*Registration, error) {
	method := registrationMethod(as)
	appType := applicationType(redirectURI)
	grants := []string{"authorization_code", "refresh_token"}
	if len(as.GrantTypesSupported) > 0 && !slices.Contains(as.GrantTypesSupported, "refresh_token") {
		grants = grants[:1]
	}
	body, err := json.Marshal(clientMetadata{
		RedirectURIs:            []string{redirectURI},
		TokenEndpointAuthMethod: method,
		GrantTypes:              grants,
		ResponseTypes:           []string{"code"},
		ClientName:              name,
		ApplicationType:         appType,
	})
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, as.RegistrationEndpoint, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("authcode: registration endpoint: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("authcode: client registration: %w", err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxRegistrationBody+1))
	if err != nil {
		return nil, fmt.Errorf("authcode: client registration: reading answer: %w", err)
	}
	if len(raw) > maxRegistrationBody {
		return nil, &RegistrationError{StatusCode: resp.StatusCode, Description: "answer over 64 KiB"}
	}
	var rr registrationResponse
	jsonErr := json.Unmarshal(raw, &rr)
	if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusOK {
		return nil, &RegistrationError{StatusCode: resp.StatusCode, Code: rr.Error, Description: rr.ErrorDescription}
	}
	if jsonErr != nil || rr.ClientID == "" {
		return nil, &RegistrationError{StatusCode: resp.StatusCode, Description: "answer is not a client information response with a client_id"}
	}
	r := &Registration{
		Issuer:          as.Issuer,
		ClientID:        rr.ClientID,
		ClientSecret:    rr.ClientSecret,
		AuthMethod:      rr.TokenEndpointAuthMethod,
		RedirectURIs:    []string{redirectURI},
		ApplicationType: appType,
	}
	if rr.ApplicationType != "" {
		r.ApplicationType = rr.ApplicationType // the server's word
	}
	var uris []string
	if json.Unmarshal(rr.RedirectURIs, &uris) == nil && len(uris) > 0 {
		r.RedirectURIs = uris
	}
	if exp, err := rr.ClientSecretExpiresAt.Int64(); err == nil && exp > 0 {
		r.SecretExpiresAt = time.Unix(exp, 0)
	}
	switch r.AuthMethod {
	case "":
		r.AuthMethod = method
		if r.ClientSecret == "" {
			r.AuthMethod = AuthMethodNone
		} else if method == AuthMethodNone {
			r.AuthMethod = chooseAuthMethod(as, true)
		}
	case AuthMethodNone, AuthMethodBasic, AuthMethodPost:
	default:
		return nil, &RegistrationError{StatusCode: resp.StatusCode, Description: "registered with token_endpoint_auth_method " + r.AuthMethod + ", which this client cannot use"}
	}
	if r.AuthMethod != AuthMethodNone && r.ClientSecret == "" {
		return nil, &RegistrationError{StatusCode: resp.StatusCode, Description: "registered with " + r.AuthMethod + " but no client_secret"}
	}
	return r, nil
}
