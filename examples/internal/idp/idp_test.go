package idp

import (
	"encoding/json"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The exchange gives an ID-JAG, typ oauth-id-jag+jwt, signed by the IdP,
// for the audience asked, naming the client there; a wrong client, an
// unknown audience, an expired or foreign ID token and another token type
// are refused.
func TestExchange(t *testing.T) {
	s, err := New(Config{ClientID: "at-idp", Clients: map[string]string{"https://as.example": "at-as"}})
	require.NoError(t, err)
	t.Cleanup(s.Close)
	hc := &http.Client{Transport: &http.Transport{}}
	t.Cleanup(hc.CloseIdleConnections)
	good, err := s.IDToken("alice", time.Hour)
	require.NoError(t, err)
	expired, err := s.IDToken("alice", -time.Minute)
	require.NoError(t, err)
	other, err := New(Config{ClientID: "at-idp"})
	require.NoError(t, err)
	t.Cleanup(other.Close)
	foreign, err := other.IDToken("alice", time.Hour)
	require.NoError(t, err)

	exchange := func(mod func(url.Values)) (int, map[string]any) {
		f := url.Values{
			"grant_type": {grantTokenExchange}, "client_id": {"at-idp"},
			"subject_token": {good}, "subject_token_type": {tokenTypeIDToken},
			"requested_token_type": {tokenTypeIDJAG}, "audience": {"https://as.example"},
			"resource": {"https://mcp.example/mcp"}, "scope": {"mcp:read"},
		}
		if mod != nil {
			mod(f)
		}
		resp, err := hc.PostForm(s.URL+"/token", f)
		require.NoError(t, err)
		defer resp.Body.Close()
		var body map[string]any
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&body))
		return resp.StatusCode, body
	}

	status, body := exchange(nil)
	require.Equal(t, http.StatusOK, status, body)
	assert.Equal(t, tokenTypeIDJAG, body["issued_token_type"])
	tok, err := jwt.ParseSigned(body["access_token"].(string), []jose.SignatureAlgorithm{jose.ES256})
	require.NoError(t, err)
	assert.Equal(t, "oauth-id-jag+jwt", tok.Headers[0].ExtraHeaders["typ"])
	var claims jwt.Claims
	var jag struct {
		ClientID string `json:"client_id"`
		Resource string `json:"resource"`
		Scope    string `json:"scope"`
	}
	require.NoError(t, tok.Claims(s.PublicKey(), &claims, &jag))
	assert.Equal(t, jwt.Audience{"https://as.example"}, claims.Audience)
	assert.Equal(t, "alice", claims.Subject)
	assert.NotEmpty(t, claims.ID)
	assert.Equal(t, "at-as", jag.ClientID)
	assert.Equal(t, "https://mcp.example/mcp", jag.Resource)
	assert.Equal(t, "mcp:read", jag.Scope)

	for _, tc := range []struct {
		name string
		mod  func(url.Values)
		code string
	}{
		{"another client", func(f url.Values) { f.Set("client_id", "x") }, "invalid_client"},
		{"an unknown audience", func(f url.Values) { f.Set("audience", "https://evil.example") }, "invalid_target"},
		{"an expired ID token", func(f url.Values) { f.Set("subject_token", expired) }, "invalid_grant"},
		{"another IdP's ID token", func(f url.Values) { f.Set("subject_token", foreign) }, "invalid_grant"},
		{"an access token asked for", func(f url.Values) { f.Set("requested_token_type", "urn:ietf:params:oauth:token-type:access_token") }, "invalid_request"},
		{"another grant", func(f url.Values) { f.Set("grant_type", "client_credentials") }, "unsupported_grant_type"},
	} {
		status, body := exchange(tc.mod)
		assert.NotEqual(t, http.StatusOK, status, tc.name)
		assert.Equal(t, tc.code, body["error"], tc.name)
	}
	assert.Equal(t, 7, s.Exchanges())
}
