package discovery

import (
	"context"
	"fmt"

	"github.com/stepup-go/stepup/internal/weborigin"
)

// LegacyAuthServer returns the authorization server metadata of a
// protected resource that publishes no protected resource metadata, where
// the MCP 2025-03-26 authorization specification has a client look for
// it: at the RFC 8414 well-known URL of the resource's origin, which that
// revision calls the authorization base URL ("determined by discarding
// any existing path component"). resource is an absolute http(s) URL, and
// decides the policy as for [Client.ProtectedResource].
//
// That revision did not bind the document to an issuer identifier, and
// servers written for it publish documents whose issuer is not the origin
// the URL was built from (an issuer under a path, say), which RFC 8414
// §3.3 would refuse. LegacyAuthServer accepts such a document, since no
// other check vouches for it, only if its issuer and every endpoint it
// names are on the resource's own origin (RFC 6454): else [ErrMismatch].
// A credential or a code is then only ever sent to the origin the
// resource's token is sent to.
//
// [ErrNotFound] says that there is no document (a 4xx answer, or one that
// is not JSON); the 2025-03-26 revision then has the client use the
// default endpoints /authorize, /token and /register on the origin, which
// is the caller's to decide. Use this only when the resource has no
// protected resource metadata at all: a resource that has some, even one
// that is refused, is not a 2025-03-26 resource.
func (c *Client) LegacyAuthServer(ctx context.Context, resource string) (*AuthServer, error) {
	ru, err := parseHTTPURL(resource)
	if err != nil {
		return nil, fmt.Errorf("discovery: resource %q: %w", resource, err)
	}
	p := c.policyFor(ru)
	u := ru.Scheme + "://" + ru.Host + AuthServerSuffix
	d, err := c.authServer(ctx, p, u)
	if absent(err) {
		return nil, fmt.Errorf("%w for the authorization base URL of %s: %w", ErrNotFound, resource, err)
	}
	if err != nil {
		return nil, err
	}
	for _, e := range [...]struct{ name, url string }{
		{"issuer", d.Issuer},
		{"authorization_endpoint", d.AuthorizationEndpoint},
		{"token_endpoint", d.TokenEndpoint},
		{"registration_endpoint", d.RegistrationEndpoint},
	} {
		if e.url == "" {
			continue
		}
		eu, err := parseHTTPURL(e.url) // the parser checked it; parse again to compare
		if err != nil || !weborigin.Same(eu, ru) {
			return nil, fmt.Errorf("%w: %s names %s %q, not on the origin of %s (MCP 2025-03-26 fallback)",
				ErrMismatch, u, e.name, e.url, resource)
		}
	}
	return d, nil
}
