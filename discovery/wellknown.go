package discovery

import (
	"fmt"
	"net/url"
	"strings"
)

// The well-known URI suffixes (RFC 8615) of the metadata documents.
const (
	// ProtectedResourceSuffix names protected resource metadata
	// (RFC 9728 §3).
	ProtectedResourceSuffix = "/.well-known/oauth-protected-resource"
	// AuthServerSuffix names authorization server metadata (RFC 8414 §3).
	AuthServerSuffix = "/.well-known/oauth-authorization-server"
	// OpenIDConfigurationSuffix names OpenID Provider metadata (OpenID
	// Connect Discovery 1.0 §4).
	OpenIDConfigurationSuffix = "/.well-known/openid-configuration"
)

// Location is a URL a metadata document may be fetched from, and the
// identifier the document found there must name.
type Location struct {
	// URL is where to fetch the document.
	URL string
	// Identifier is the resource or issuer identifier the URL was built
	// from, which the document must name exactly (RFC 9728 §3.3,
	// RFC 8414 §3.3).
	Identifier string
}

// ProtectedResourceLocations returns where to look for the metadata of
// the protected resource identified by resource, in the order the MCP
// authorization specification gives when no resource_metadata URL is
// known: the path-inserted URL, then, for a resource with a path, the root
// one. RFC 9728 §3.1:
//
//	the well-known URI path suffix used MUST be inserted between the host
//	component and the path and/or query components. [...] If the resource
//	identifier value contains a terminating slash (/) after the host
//	component, it MUST be removed before inserting.
//
// The root URL names the resource's origin (scheme, host and port as the
// resource spells them), which the document found there must name.
func ProtectedResourceLocations(resource string) ([]Location, error) {
	u, err := parseHTTPURL(resource)
	if err != nil {
		return nil, fmt.Errorf("discovery: resource %q: %w", resource, err)
	}
	origin := u.Scheme + "://" + u.Host
	path := strings.TrimSuffix(u.EscapedPath(), "/")
	query := ""
	if u.RawQuery != "" {
		query = "?" + u.RawQuery
	}
	root := Location{URL: origin + ProtectedResourceSuffix, Identifier: origin}
	if path == "" && query == "" {
		return []Location{{URL: root.URL, Identifier: resource}}, nil
	}
	return []Location{
		{URL: origin + ProtectedResourceSuffix + path + query, Identifier: resource},
		root,
	}, nil
}

// AuthServerLocations returns where to look for the metadata of the
// authorization server with the given issuer identifier, in the order the
// MCP authorization specification gives. For an issuer with a path
// component:
//
//  1. RFC 8414 §3.1, path inserted: /.well-known/oauth-authorization-server/{path}
//  2. OpenID Connect Discovery, path inserted: /.well-known/openid-configuration/{path}
//  3. OpenID Connect Discovery 1.0 §4, path appended: /{path}/.well-known/openid-configuration
//
// For one without: the RFC 8414 URL, then the OpenID Connect one. A
// terminating slash of the issuer is removed first (RFC 8414 §3.1, OpenID
// Connect Discovery 1.0 §4). Each location's Identifier is issuer.
func AuthServerLocations(issuer string) ([]Location, error) {
	u, err := parseHTTPURL(issuer)
	if err != nil {
		return nil, fmt.Errorf("discovery: issuer %q: %w", issuer, err)
	}
	if u.RawQuery != "" || u.ForceQuery {
		return nil, fmt.Errorf("discovery: issuer %q has a query (RFC 8414 §2)", issuer)
	}
	origin := u.Scheme + "://" + u.Host
	path := strings.TrimSuffix(u.EscapedPath(), "/")
	if path == "" {
		return []Location{
			{URL: origin + AuthServerSuffix, Identifier: issuer},
			{URL: origin + OpenIDConfigurationSuffix, Identifier: issuer},
		}, nil
	}
	return []Location{
		{URL: origin + AuthServerSuffix + path, Identifier: issuer},
		{URL: origin + OpenIDConfigurationSuffix + path, Identifier: issuer},
		{URL: origin + path + OpenIDConfigurationSuffix, Identifier: issuer},
	}, nil
}

// parseHTTPURL parses an absolute http(s) URL with a host and no fragment
// or user information.
func parseHTTPURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		return nil, err
	case u.Scheme != "https" && u.Scheme != "http":
		return nil, fmt.Errorf("not an absolute http(s) URL")
	case u.Host == "" || u.Opaque != "":
		return nil, fmt.Errorf("no host")
	case u.User != nil:
		return nil, fmt.Errorf("carries user information")
	case u.Fragment != "" || strings.Contains(raw, "#"):
		return nil, fmt.Errorf("has a fragment")
	}
	return u, nil
}
