// Package realserver starts authorization servers that nobody here wrote —
// panva's oidc-provider, Ory Hydra, zitadel's op — on loopback for tests,
// and gives each the same face: an issuer to discover, a scripted person at
// its login and consent pages, a way for a resource server to check its
// access tokens, and counts of what its token endpoint was asked.
//
// A server whose program is not installed makes [Start] functions skip the
// test, unless STEPUP_REQUIRE_REAL_SERVERS=1 (as in CI), where it fails.
package realserver

import (
	"context"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/stepup-go/stepup/authcode"
)

// Decision is what the scripted person does at the next authorization
// request.
type Decision struct {
	// Decline refuses consent: the server answers access_denied.
	Decline bool
	// Grant, when not nil, consents to these of the scopes asked only
	// (partial consent), where the server supports it.
	Grant []string
	// ACR is the authentication context class the person's login
	// satisfies (RFC 9470), "" for the server's default.
	ACR string
}

// TokenInfo is what a resource server learns of an access token.
type TokenInfo struct {
	Subject  string
	Scopes   []string
	Expires  time.Time
	ACR      string    // "acr" claim, "" if none
	AuthTime time.Time // "auth_time", zero if none
	JKT      string    // cnf.jkt of a DPoP-bound token (RFC 9449 §6.1), "" if none
}

// Counts are the requests a server's endpoints received, by kind.
type Counts struct {
	Authorizations int            // authorization requests (front channel)
	Registrations  int            // dynamic client registrations
	Grants         map[string]int // token requests by grant_type
	// Requested is the scope parameter of each authorization request,
	// pushed (RFC 9126) or not, in order, where the server's counter
	// records it; nil otherwise.
	Requested []string
}

// Server is a started authorization server.
type Server struct {
	// Name names the implementation and its version, as the scenario
	// table prints it.
	Name string
	// Issuer is its issuer identifier, where discovery starts.
	Issuer string
	// Resource is the resource indicator (RFC 8707) the server issues
	// tokens for; the resource server of the test serves at it.
	Resource string
	// Features says which scenarios the server supports.
	Features Features
	// Client is the client registered at the server beforehand, for
	// authcode.Escalator.Client, where the server has no dynamic
	// registration; nil otherwise.
	Client *authcode.Registration

	// Browser plays the person: it opens an authorization URL, logs in,
	// answers the consent page as the current Decision says, and follows
	// the redirect back to the client's redirect URI.
	Browser func(ctx context.Context, authURL string) error
	// Decide sets the Decision for the authorization requests from now on.
	Decide func(Decision)
	// Verify checks an access token as the resource server at Resource
	// would (signature, issuer, audience, expiry; or introspection).
	Verify func(ctx context.Context, token string) (*TokenInfo, error)
	// Revoke revokes a token (RFC 7009) or otherwise makes the server
	// refuse it from now on; nil where the server cannot.
	Revoke func(ctx context.Context, token string) error
	// Counts reports what the server was asked so far.
	Counts func() Counts
	// TrustJWTIssuer makes the server accept, in the JWT bearer grant
	// (RFC 7523 §2.1), assertions that issuer signs with key about
	// subject, for scopes, as an operator registers a workload identity
	// provider; nil where the server has no such trust.
	TrustJWTIssuer func(ctx context.Context, issuer, subject string, key jose.JSONWebKey, scopes []string) error
}

// Features lists what a server supports beyond the authorization code
// grant with PKCE.
type Features struct {
	DynamicRegistration bool // RFC 7591
	ResourceIndicators  bool // RFC 8707
	RefreshRotation     bool // rotated refresh tokens, reuse revoking the grant
	Consent             bool // a consent page at which the person may decline (access_denied)
	PartialConsent      bool // a person may grant some of the scopes asked
	StepUpAuthn         bool // acr_values / max_age honoured (RFC 9470)
	Revocation          bool // RFC 7009
}
