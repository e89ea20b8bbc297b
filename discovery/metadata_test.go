package discovery_test

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stepup-go/stepup/discovery"
)

func TestParseProtectedResource(t *testing.T) {
	d, err := discovery.ParseProtectedResource([]byte(`{
		"resource": "https://mcp.example.com/mcp",
		"authorization_servers": ["https://as.example.com", "https://as.example.com/tenant1"],
		"scopes_supported": ["files:read", "files:write"],
		"bearer_methods_supported": ["header"],
		"resource_name": "Files",
		"resource_signing_alg_values_supported": ["RS256"],
		"future_member": {"ignored": true}
	}`))
	require.NoError(t, err)
	assert.Equal(t, &discovery.ProtectedResource{
		Resource:               "https://mcp.example.com/mcp",
		AuthorizationServers:   []string{"https://as.example.com", "https://as.example.com/tenant1"},
		ScopesSupported:        []string{"files:read", "files:write"},
		BearerMethodsSupported: []string{"header"},
		ResourceName:           "Files",
	}, d, "unknown members are ignored (RFC 9728 §3.2)")
}

func TestParseProtectedResourceMalformed(t *testing.T) {
	for _, doc := range []string{
		``,
		`null`,
		`[]`,
		`"https://mcp.example.com/mcp"`,
		`{}`,
		`{"resource": ""}`,
		`{"resource": 42}`,
		`{"resource": "mcp.example.com/mcp"}`,
		`{"resource": "https://mcp.example.com/mcp#frag"}`,
		`{"resource": "https://mcp.example.com/mcp#"}`,
		`{"resource": "urn:example:mcp"}`,
		`{"resource": "https:///mcp"}`,
		`{"resource": "https://user@mcp.example.com/mcp"}`,
		`{"resource": "https://mcp.example.com/mcp", "authorization_servers": "https://as.example.com"}`,
		`{"resource": "https://mcp.example.com/mcp", "authorization_servers": ["https://as.example.com?tenant=1"]}`,
		`{"resource": "https://mcp.example.com/mcp", "authorization_servers": ["javascript:alert(1)"]}`,
		`{"resource": "https://mcp.example.com/mcp", "authorization_servers": [null, 1]}`,
		`{"resource": "https://mcp.example.com/mcp", "scopes_supported": ["files:read files:write"]}`,
		`{"resource": "https://mcp.example.com/mcp", "scopes_supported": ["quote\""]}`,
		`{"resource": "https://mcp.example.com/mcp", "scopes_supported": [""]}`,
		`{"resource": "https://mcp.example.com/mcp", "scopes_supported": ["caf\u00e9"]}`,
		`{"resource": "https://mcp.example.com/mcp"`,
	} {
		_, err := discovery.ParseProtectedResource([]byte(doc))
		assert.ErrorIs(t, err, discovery.ErrMalformed, doc)
	}
}

// Member names are case-sensitive: "Resource" is not "resource", though
// encoding/json would match it to the same field.
func TestParseProtectedResourceExactNames(t *testing.T) {
	d, err := discovery.ParseProtectedResource([]byte(`{"resource": "https://evil.example/mcp", "Resource": "https://mcp.example.com/mcp"}`))
	require.NoError(t, err)
	assert.Equal(t, "https://evil.example/mcp", d.Resource)

	_, err = discovery.ParseProtectedResource([]byte(`{"Resource": "https://mcp.example.com/mcp"}`))
	assert.ErrorIs(t, err, discovery.ErrMalformed)

	// A repeated member counts with its last value, as JSON.parse reads it.
	d, err = discovery.ParseProtectedResource([]byte(`{"resource": "https://a.example/", "resource": "https://b.example/"}`))
	require.NoError(t, err)
	assert.Equal(t, "https://b.example/", d.Resource)
}

func TestParseAuthServer(t *testing.T) {
	d, err := discovery.ParseAuthServer([]byte(`{
		"issuer": "https://as.example.com/tenant1",
		"authorization_endpoint": "https://as.example.com/tenant1/authorize?ui=compact",
		"token_endpoint": "https://as.example.com/tenant1/token",
		"registration_endpoint": "https://as.example.com/tenant1/register",
		"scopes_supported": ["openid", "offline_access"],
		"response_types_supported": ["code"],
		"grant_types_supported": ["authorization_code", "refresh_token"],
		"token_endpoint_auth_methods_supported": ["none", "client_secret_basic"],
		"code_challenge_methods_supported": ["S256"],
		"acr_values_supported": ["urn:mace:incommon:iap:silver"],
		"claims_parameter_supported": true,
		"authorization_response_iss_parameter_supported": true,
		"client_id_metadata_document_supported": true,
		"jwks_uri": "https://as.example.com/jwks"
	}`))
	require.NoError(t, err)
	assert.Equal(t, &discovery.AuthServer{
		Issuer:                                     "https://as.example.com/tenant1",
		AuthorizationEndpoint:                      "https://as.example.com/tenant1/authorize?ui=compact",
		TokenEndpoint:                              "https://as.example.com/tenant1/token",
		RegistrationEndpoint:                       "https://as.example.com/tenant1/register",
		ScopesSupported:                            []string{"openid", "offline_access"},
		ResponseTypesSupported:                     []string{"code"},
		GrantTypesSupported:                        []string{"authorization_code", "refresh_token"},
		TokenEndpointAuthMethodsSupported:          []string{"none", "client_secret_basic"},
		CodeChallengeMethodsSupported:              []string{"S256"},
		ACRValuesSupported:                         []string{"urn:mace:incommon:iap:silver"},
		ClaimsParameterSupported:                   true,
		AuthorizationResponseIssParameterSupported: true,
		ClientIDMetadataDocumentSupported:          true,
	}, d)
}

func TestParseAuthServerMalformed(t *testing.T) {
	for _, doc := range []string{
		`{}`,
		`{"issuer": "https://as.example.com?x=1"}`,
		`{"issuer": "https://as.example.com#x"}`,
		`{"issuer": "as.example.com"}`,
		`{"issuer": "https://as.example.com", "token_endpoint": "/token"}`,
		`{"issuer": "https://as.example.com", "authorization_endpoint": "javascript:alert(1)"}`,
		`{"issuer": "https://as.example.com", "registration_endpoint": "file:///etc/passwd"}`,
		`{"issuer": "https://as.example.com", "code_challenge_methods_supported": "S256"}`,
		`{"issuer": "https://as.example.com", "authorization_response_iss_parameter_supported": "true"}`,
		`{"issuer": "https://as.example.com", "scopes_supported": ["a b"]}`,
		`{"issuer": ["https://as.example.com"]}`,
	} {
		_, err := discovery.ParseAuthServer([]byte(doc))
		assert.ErrorIs(t, err, discovery.ErrMalformed, doc)
	}
}

func TestProtectedResourceLocations(t *testing.T) {
	for _, tc := range []struct {
		resource string
		want     []discovery.Location
	}{
		// RFC 9728 §3.1's example.
		{"https://resource.example.com/resource1", []discovery.Location{
			{URL: "https://resource.example.com/.well-known/oauth-protected-resource/resource1", Identifier: "https://resource.example.com/resource1"},
			{URL: "https://resource.example.com/.well-known/oauth-protected-resource", Identifier: "https://resource.example.com"},
		}},
		{"https://ex.com/public/mcp", []discovery.Location{
			{URL: "https://ex.com/.well-known/oauth-protected-resource/public/mcp", Identifier: "https://ex.com/public/mcp"},
			{URL: "https://ex.com/.well-known/oauth-protected-resource", Identifier: "https://ex.com"},
		}},
		{"http://localhost:3000/mcp/", []discovery.Location{
			{URL: "http://localhost:3000/.well-known/oauth-protected-resource/mcp", Identifier: "http://localhost:3000/mcp/"},
			{URL: "http://localhost:3000/.well-known/oauth-protected-resource", Identifier: "http://localhost:3000"},
		}},
		{"https://ex.com/api?tenant=a", []discovery.Location{
			{URL: "https://ex.com/.well-known/oauth-protected-resource/api?tenant=a", Identifier: "https://ex.com/api?tenant=a"},
			{URL: "https://ex.com/.well-known/oauth-protected-resource", Identifier: "https://ex.com"},
		}},
		{"https://ex.com/", []discovery.Location{
			{URL: "https://ex.com/.well-known/oauth-protected-resource", Identifier: "https://ex.com/"},
		}},
		{"https://ex.com", []discovery.Location{
			{URL: "https://ex.com/.well-known/oauth-protected-resource", Identifier: "https://ex.com"},
		}},
	} {
		got, err := discovery.ProtectedResourceLocations(tc.resource)
		require.NoError(t, err, tc.resource)
		assert.Equal(t, tc.want, got, tc.resource)
	}
	for _, bad := range []string{"mcp.example.com", "https://ex.com/#x", "ftp://ex.com/", ""} {
		_, err := discovery.ProtectedResourceLocations(bad)
		assert.Error(t, err, bad)
	}
}

func TestAuthServerLocations(t *testing.T) {
	loc := func(issuer string, urls ...string) []discovery.Location {
		var out []discovery.Location
		for _, u := range urls {
			out = append(out, discovery.Location{URL: u, Identifier: issuer})
		}
		return out
	}
	for _, tc := range []struct {
		issuer string
		want   []discovery.Location
	}{
		{"https://as.example.com", loc("https://as.example.com",
			"https://as.example.com/.well-known/oauth-authorization-server",
			"https://as.example.com/.well-known/openid-configuration")},
		{"https://as.example.com/", loc("https://as.example.com/",
			"https://as.example.com/.well-known/oauth-authorization-server",
			"https://as.example.com/.well-known/openid-configuration")},
		// RFC 8414 §3.1's example, then the OpenID Connect forms.
		{"https://example.com/issuer1", loc("https://example.com/issuer1",
			"https://example.com/.well-known/oauth-authorization-server/issuer1",
			"https://example.com/.well-known/openid-configuration/issuer1",
			"https://example.com/issuer1/.well-known/openid-configuration")},
		{"http://localhost:9000/tenant1/", loc("http://localhost:9000/tenant1/",
			"http://localhost:9000/.well-known/oauth-authorization-server/tenant1",
			"http://localhost:9000/.well-known/openid-configuration/tenant1",
			"http://localhost:9000/tenant1/.well-known/openid-configuration")},
	} {
		got, err := discovery.AuthServerLocations(tc.issuer)
		require.NoError(t, err, tc.issuer)
		assert.Equal(t, tc.want, got, tc.issuer)
	}
	for _, bad := range []string{"https://as.example.com?x=1", "https://as.example.com#x", "as.example.com"} {
		_, err := discovery.AuthServerLocations(bad)
		assert.Error(t, err, bad)
	}
}

// FuzzParseProtectedResource: the parser never panics, and what it
// accepts survives a round trip through JSON.
func FuzzParseProtectedResource(f *testing.F) {
	for _, s := range []string{
		`{"resource":"https://mcp.example.com/mcp","authorization_servers":["https://as.example.com"],"scopes_supported":["a","b"]}`,
		`{"resource":"http://localhost:3000","resource":"https://evil/","Resource":1}`,
		`{"resource":"https://x/#","scopes_supported":["a b"]}`,
		`[]`, `null`, `{"resource":null}`, `{"authorization_servers":[{"a":1}]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		d, err := discovery.ParseProtectedResource(data)
		if err != nil {
			return
		}
		b, err := json.Marshal(d)
		require.NoError(t, err)
		again, err := discovery.ParseProtectedResource(b)
		require.NoError(t, err, "%s", b)
		assert.Equal(t, d, again)
		_, err = discovery.ProtectedResourceLocations(d.Resource)
		assert.NoError(t, err, "an accepted resource has well-known locations")
		for _, as := range d.AuthorizationServers {
			_, err = discovery.AuthServerLocations(as)
			assert.NoError(t, err, "an accepted issuer has well-known locations")
		}
	})
}

// FuzzParseAuthServer: the parser never panics, and what it accepts
// survives a round trip through JSON.
func FuzzParseAuthServer(f *testing.F) {
	for _, s := range []string{
		`{"issuer":"https://as.example.com","authorization_endpoint":"https://as.example.com/a","token_endpoint":"https://as.example.com/t","code_challenge_methods_supported":["S256"],"authorization_response_iss_parameter_supported":true}`,
		`{"issuer":"https://as/?","token_endpoint":"x"}`,
		`{"issuer":"https://as","client_id_metadata_document_supported":"yes"}`,
		`{}`, `1`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		d, err := discovery.ParseAuthServer(data)
		if err != nil {
			return
		}
		b, err := json.Marshal(d)
		require.NoError(t, err)
		again, err := discovery.ParseAuthServer(b)
		require.NoError(t, err, "%s", b)
		assert.Equal(t, d, again)
		_, err = discovery.AuthServerLocations(d.Issuer)
		assert.NoError(t, err, "an accepted issuer has well-known locations")
	})
}
