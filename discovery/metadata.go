package discovery

import (
	"encoding/json"
	"errors"
	"fmt"
)

// ErrMalformed says that a metadata document is not one a client may act
// on: not a JSON object, a member of the wrong type, a URL that is not an
// absolute http(s) URL, a scope value with a character RFC 6749 §3.3 does
// not allow.
var ErrMalformed = errors.New("discovery: malformed metadata")

// ProtectedResource is the metadata of an OAuth 2.0 protected resource
// (RFC 9728 §2). Members a client of this package does not use are not
// kept; unknown members are ignored, as RFC 9728 §3.2 requires.
type ProtectedResource struct {
	// Resource is the protected resource's resource identifier: the
	// RFC 8707 resource to send in authorization and token requests.
	Resource string `json:"resource"`
	// AuthorizationServers are the issuer identifiers (RFC 8414 §2) of
	// the authorization servers that issue tokens for the resource.
	AuthorizationServers []string `json:"authorization_servers,omitempty"`
	// ScopesSupported are the scope values used in authorization requests
	// for the resource.
	ScopesSupported []string `json:"scopes_supported,omitempty"`
	// BearerMethodsSupported are the ways of sending a bearer token the
	// resource accepts: header, body, query (RFC 6750 §2).
	BearerMethodsSupported []string `json:"bearer_methods_supported,omitempty"`
	// ResourceName is the resource's name for people.
	ResourceName string `json:"resource_name,omitempty"`
}

// ParseProtectedResource parses a protected resource metadata document
// (RFC 9728 §2):
//
//	resource                 REQUIRED. The protected resource's resource identifier
//	authorization_servers    OPTIONAL. JSON array of OAuth authorization server issuer identifiers
//	scopes_supported         RECOMMENDED. JSON array of scope values
//	bearer_methods_supported OPTIONAL. JSON array: "header", "body", "query"
//	resource_name            RECOMMENDED. Human-readable name
//
// The resource must be an absolute http(s) URL without fragment
// (RFC 8707 §2), each authorization server an issuer identifier: an http(s)
// URL without query or fragment (RFC 8414 §2). Member names are matched
// exactly, and a repeated member counts with its last value, as
// ECMAScript's JSON.parse reads it. The error wraps [ErrMalformed].
func ParseProtectedResource(data []byte) (*ProtectedResource, error) {
	m, err := members(data)
	if err != nil {
		return nil, err
	}
	var d ProtectedResource
	if err := firstErr(
		m.str("resource", &d.Resource),
		m.strs("authorization_servers", &d.AuthorizationServers),
		m.strs("scopes_supported", &d.ScopesSupported),
		m.strs("bearer_methods_supported", &d.BearerMethodsSupported),
		m.str("resource_name", &d.ResourceName),
	); err != nil {
		return nil, err
	}
	if d.Resource == "" {
		return nil, malformed("resource is missing")
	}
	if err := checkURL("resource", d.Resource, false); err != nil {
		return nil, err
	}
	for _, as := range d.AuthorizationServers {
		if err := checkURL("authorization_servers", as, true); err != nil {
			return nil, err
		}
	}
	if err := checkScopes("scopes_supported", d.ScopesSupported); err != nil {
		return nil, err
	}
	return &d, nil
}

// AuthServer is the metadata of an OAuth 2.0 authorization server
// (RFC 8414 §2), also as OpenID Connect Discovery 1.0 §3 serves it. Members
// a client of this package does not use are not kept.
type AuthServer struct {
	// Issuer is the authorization server's issuer identifier.
	Issuer string `json:"issuer"`
	// AuthorizationEndpoint is the URL of the authorization endpoint
	// (RFC 6749 §3.1).
	AuthorizationEndpoint string `json:"authorization_endpoint,omitempty"`
	// TokenEndpoint is the URL of the token endpoint (RFC 6749 §3.2).
	TokenEndpoint string `json:"token_endpoint,omitempty"`
	// RegistrationEndpoint is the URL of the dynamic client registration
	// endpoint (RFC 7591 §3), "" when the server has none.
	RegistrationEndpoint string `json:"registration_endpoint,omitempty"`
	// ScopesSupported are the scope values the server supports.
	ScopesSupported []string `json:"scopes_supported,omitempty"`
	// ResponseTypesSupported are the response_type values the server
	// supports; a server that lists some but not "code" has no
	// authorization code flow.
	ResponseTypesSupported []string `json:"response_types_supported,omitempty"`
	// GrantTypesSupported are the grant types the server supports; absent
	// means authorization_code and implicit (RFC 8414 §2).
	GrantTypesSupported []string `json:"grant_types_supported,omitempty"`
	// TokenEndpointAuthMethodsSupported are the client authentication
	// methods of the token endpoint; absent means client_secret_basic
	// (RFC 8414 §2).
	TokenEndpointAuthMethodsSupported []string `json:"token_endpoint_auth_methods_supported,omitempty"`
	// CodeChallengeMethodsSupported are the PKCE methods (RFC 7636 §4.3);
	// absent means the server does not support PKCE.
	CodeChallengeMethodsSupported []string `json:"code_challenge_methods_supported,omitempty"`
	// ACRValuesSupported are the Authentication Context Class References
	// the server supports (OpenID Connect Discovery 1.0 §3, RFC 9470 §7).
	ACRValuesSupported []string `json:"acr_values_supported,omitempty"`
	// ClaimsParameterSupported says whether the server supports the
	// OpenID Connect claims request parameter.
	ClaimsParameterSupported bool `json:"claims_parameter_supported,omitempty"`
	// AuthorizationResponseIssParameterSupported says that the server
	// puts its issuer in every authorization response (RFC 9207 §3): a
	// response without iss must then be refused.
	AuthorizationResponseIssParameterSupported bool `json:"authorization_response_iss_parameter_supported,omitempty"`
	// ClientIDMetadataDocumentSupported says that the server accepts an
	// https URL of a client ID metadata document as client_id (OAuth
	// Client ID Metadata Document, used by MCP).
	ClientIDMetadataDocumentSupported bool `json:"client_id_metadata_document_supported,omitempty"`
	// PushedAuthorizationRequestEndpoint is the URL of the pushed
	// authorization request endpoint (RFC 9126 §5), "" when the server
	// has none.
	PushedAuthorizationRequestEndpoint string `json:"pushed_authorization_request_endpoint,omitempty"`
	// RequirePushedAuthorizationRequests says that the server accepts
	// authorization requests only through its pushed authorization
	// request endpoint (RFC 9126 §5).
	RequirePushedAuthorizationRequests bool `json:"require_pushed_authorization_requests,omitempty"`
	// DPoPSigningAlgValuesSupported are the JWS algorithms the server
	// accepts in DPoP proofs (RFC 9449 §5.1); none listed says nothing
	// of whether it takes DPoP at all.
	DPoPSigningAlgValuesSupported []string `json:"dpop_signing_alg_values_supported,omitempty"`

	// OpenIDConfiguration says that the document was found at an OpenID
	// Connect Discovery location (/.well-known/openid-configuration),
	// not RFC 8414's: the server is an OpenID Provider. Set by
	// [Client.AuthServer]; not a member of the document.
	OpenIDConfiguration bool `json:"-"`
}

// ParseAuthServer parses an authorization server metadata document
// (RFC 8414 §2; OpenID Connect Discovery 1.0 §3 uses the same names):
//
//	issuer                                 REQUIRED. https URL, no query or fragment
//	authorization_endpoint                 URL of the authorization endpoint
//	token_endpoint                         URL of the token endpoint
//	registration_endpoint                  OPTIONAL. RFC 7591 registration endpoint
//	scopes_supported                       RECOMMENDED. JSON array of scope values
//	response_types_supported               REQUIRED. JSON array of response_type values
//	grant_types_supported                  OPTIONAL. JSON array of grant types
//	token_endpoint_auth_methods_supported  OPTIONAL. Default client_secret_basic
//	code_challenge_methods_supported       OPTIONAL. Absent: no PKCE
//	acr_values_supported                   OPTIONAL (OpenID Connect Discovery 1.0)
//	claims_parameter_supported             OPTIONAL (OpenID Connect Discovery 1.0)
//	authorization_response_iss_parameter_supported  OPTIONAL (RFC 9207 §3)
//	client_id_metadata_document_supported  OPTIONAL (OAuth Client ID Metadata Document)
//	pushed_authorization_request_endpoint  OPTIONAL (RFC 9126 §5)
//	require_pushed_authorization_requests  OPTIONAL (RFC 9126 §5)
//
// The issuer must be an http(s) URL without query or fragment, the
// endpoints absolute http(s) URLs without fragment. Member names are
// matched exactly; a repeated member counts with its last value. The error
// wraps [ErrMalformed]. Whether https is required, and whether the
// server fits a client, is for the caller to decide.
func ParseAuthServer(data []byte) (*AuthServer, error) {
	m, err := members(data)
	if err != nil {
		return nil, err
	}
	var d AuthServer
	if err := firstErr(
		m.str("issuer", &d.Issuer),
		m.str("authorization_endpoint", &d.AuthorizationEndpoint),
		m.str("token_endpoint", &d.TokenEndpoint),
		m.str("registration_endpoint", &d.RegistrationEndpoint),
		m.strs("scopes_supported", &d.ScopesSupported),
		m.strs("response_types_supported", &d.ResponseTypesSupported),
		m.strs("grant_types_supported", &d.GrantTypesSupported),
		m.strs("token_endpoint_auth_methods_supported", &d.TokenEndpointAuthMethodsSupported),
		m.strs("code_challenge_methods_supported", &d.CodeChallengeMethodsSupported),
		m.strs("acr_values_supported", &d.ACRValuesSupported),
		m.boolean("claims_parameter_supported", &d.ClaimsParameterSupported),
		m.boolean("authorization_response_iss_parameter_supported", &d.AuthorizationResponseIssParameterSupported),
		m.boolean("client_id_metadata_document_supported", &d.ClientIDMetadataDocumentSupported),
		m.str("pushed_authorization_request_endpoint", &d.PushedAuthorizationRequestEndpoint),
		m.boolean("require_pushed_authorization_requests", &d.RequirePushedAuthorizationRequests),
		m.strs("dpop_signing_alg_values_supported", &d.DPoPSigningAlgValuesSupported),
	); err != nil {
		return nil, err
	}
	if d.Issuer == "" {
		return nil, malformed("issuer is missing")
	}
	if err := checkURL("issuer", d.Issuer, true); err != nil {
		return nil, err
	}
	for _, e := range [...]struct{ name, url string }{
		{"authorization_endpoint", d.AuthorizationEndpoint},
		{"token_endpoint", d.TokenEndpoint},
		{"registration_endpoint", d.RegistrationEndpoint},
		{"pushed_authorization_request_endpoint", d.PushedAuthorizationRequestEndpoint},
	} {
		if e.url == "" {
			continue
		}
		if err := checkURL(e.name, e.url, false); err != nil {
			return nil, err
		}
	}
	if err := checkScopes("scopes_supported", d.ScopesSupported); err != nil {
		return nil, err
	}
	return &d, nil
}

// object is a JSON object's members by exact name.
type object map[string]json.RawMessage

// members decodes data as a JSON object. encoding/json matches member
// names to struct fields without regard to case, so that "Resource" would
// fill the resource field; the names of a metadata document are
// case-sensitive (RFC 8259 §4 leaves it to the format; RFC 9728 and
// RFC 8414 define lower-case names only), so they are matched here.
func members(data []byte) (object, error) {
	var m object
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if m == nil {
		return nil, malformed("not a JSON object")
	}
	return m, nil
}

func (m object) str(name string, dst *string) error {
	raw, ok := m[name]
	if !ok || string(raw) == "null" {
		return nil
	}
	if err := json.Unmarshal(raw, dst); err != nil {
		return malformed(name + " is not a string")
	}
	return nil
}

func (m object) strs(name string, dst *[]string) error {
	raw, ok := m[name]
	if !ok || string(raw) == "null" {
		return nil
	}
	if err := json.Unmarshal(raw, dst); err != nil {
		return malformed(name + " is not an array of strings")
	}
	if len(*dst) == 0 {
		*dst = nil // an empty list says what an absent one says
	}
	return nil
}

func (m object) boolean(name string, dst *bool) error {
	raw, ok := m[name]
	if !ok || string(raw) == "null" {
		return nil
	}
	if err := json.Unmarshal(raw, dst); err != nil {
		return malformed(name + " is not a boolean")
	}
	return nil
}

func firstErr(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

func malformed(why string) error { return fmt.Errorf("%w: %s", ErrMalformed, why) }

// checkURL checks that raw, the value of member name, is an absolute http
// or https URL with a host, without user information or fragment, and, for
// an issuer identifier (RFC 8414 §2), without query.
func checkURL(name, raw string, issuer bool) error {
	u, err := parseHTTPURL(raw)
	if err != nil {
		return malformed(name + ": " + err.Error())
	}
	if issuer && (u.RawQuery != "" || u.ForceQuery) {
		return malformed(name + " has a query (RFC 8414 §2)")
	}
	return nil
}

// checkScopes checks that every value is a scope-token (RFC 6749 §3.3):
//
//	scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
//
// A value with a space would smuggle a second scope into a request.
func checkScopes(name string, scopes []string) error {
	for _, s := range scopes {
		if s == "" {
			return malformed(name + " has an empty scope value")
		}
		for i := 0; i < len(s); i++ {
			if c := s[i]; c < 0x21 || c > 0x7e || c == '"' || c == '\\' {
				return malformed(name + " has a scope value with a character outside RFC 6749 §3.3")
			}
		}
	}
	return nil
}
