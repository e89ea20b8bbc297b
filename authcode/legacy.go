package authcode

import (
	"context"
	"errors"
	"fmt"
	"net/url"

	"github.com/stepup-go/stepup/discovery"
)

// The default endpoints of the MCP 2025-03-26 authorization specification,
// relative to the authorization base URL, for a server with no metadata.
const (
	legacyAuthorizePath = "/authorize"
	legacyTokenPath     = "/token"
	legacyRegisterPath  = "/register"
)

// legacy returns what the MCP 2025-03-26 authorization specification has a
// client use for a resource with no protected resource metadata (see
// [Escalator.AllowLegacyDiscovery]): the resource itself as the
// RFC 8707 resource, and the authorization server metadata at the
// resource's origin, else the default endpoints there.
func (e *Escalator) legacy(ctx context.Context, resource string) (*discovery.ProtectedResource, *discovery.AuthServer, error) {
	prm := &discovery.ProtectedResource{Resource: resource}
	as, err := e.disc.LegacyAuthServer(ctx, resource)
	if errors.Is(err, discovery.ErrNotFound) {
		as, err = legacyDefaults(resource)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("authcode: no protected resource metadata, and the MCP 2025-03-26 fallback: %w", err)
	}
	if e.AuthorizationServer != "" && as.Issuer != e.AuthorizationServer {
		return nil, nil, fmt.Errorf("authcode: %s has no protected resource metadata, and its origin's authorization server %s is not %s",
			resource, as.Issuer, e.AuthorizationServer)
	}
	if err := fits(as); err != nil {
		return nil, nil, err
	}
	return prm, as, nil
}

// legacyDefaults returns the metadata of the default endpoints on the
// resource's origin, the authorization base URL. The origin stands as
// the issuer, the key registrations are kept under. The 2025-03-26
// revision requires PKCE of every client (OAuth 2.1 §4.1.1), so S256 is
// taken as supported; nothing else is assumed, so that client
// authentication is RFC 8414 §2's default, client_secret_basic.
func legacyDefaults(resource string) (*discovery.AuthServer, error) {
	u, err := url.Parse(resource)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("resource %q is not an absolute URL", resource)
	}
	origin := u.Scheme + "://" + u.Host
	return &discovery.AuthServer{
		Issuer:                        origin,
		AuthorizationEndpoint:         origin + legacyAuthorizePath,
		TokenEndpoint:                 origin + legacyTokenPath,
		RegistrationEndpoint:          origin + legacyRegisterPath,
		ResponseTypesSupported:        []string{"code"},
		CodeChallengeMethodsSupported: []string{"S256"},
	}, nil
}
