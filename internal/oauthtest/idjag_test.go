package oauthtest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

// An ID-JAG from a trusted IdP, for this server and the client that
// authenticates, redeems for the scope asked within its own; one of
// another typ, another client, another audience, an untrusted issuer, or
// asking beyond its scope, is refused.
func TestRedeemIDJAG(t *testing.T) {
	srv := New(Config{Clients: []Client{{ID: "svc", Secret: "svc-secret"}}})
	srv.AllowResource(testResource)
	base := &http.Transport{}
	t.Cleanup(func() {
		base.CloseIdleConnections()
		srv.Close()
	})
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	srv.TrustIDJAGIssuer("https://idp.example", &key.PublicKey)
	untrusted, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	jag := func(signer *ecdsa.PrivateKey, typ, iss, aud, client string) string {
		s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: signer}, (&jose.SignerOptions{}).WithType(jose.ContentType(typ)))
		require.NoError(t, err)
		raw, err := jwt.Signed(s).Claims(jwt.Claims{Issuer: iss, Subject: "alice", Audience: jwt.Audience{aud},
			Expiry: jwt.NewNumericDate(time.Now().Add(time.Minute))}).
			Claims(map[string]any{"client_id": client, "resource": testResource, "scope": "mcp:read mcp:write"}).Serialize()
		require.NoError(t, err)
		return raw
	}
	ctx := context.WithValue(context.Background(), oauth2.HTTPClient, &http.Client{Transport: base})
	redeem := func(assertion, scope string) (*oauth2.Token, error) {
		cfg := &clientcredentials.Config{ClientID: "svc", ClientSecret: "svc-secret", TokenURL: srv.TokenEndpoint(), AuthStyle: oauth2.AuthStyleInHeader,
			EndpointParams: url.Values{"grant_type": {grantJWTBearer}, "assertion": {assertion}}}
		if scope != "" {
			cfg.Scopes = []string{scope}
		}
		return cfg.Token(ctx)
	}
	tok, err := redeem(jag(key, "oauth-id-jag+jwt", "https://idp.example", srv.URL, "svc"), "mcp:read")
	require.NoError(t, err)
	assert.Empty(t, tok.RefreshToken)
	info, err := srv.Verify(tok.AccessToken, testResource)
	require.NoError(t, err)
	assert.Equal(t, []string{"mcp:read"}, info.Scopes)

	for _, tc := range []struct {
		name, assertion, scope, code string
	}{
		{"another typ", jag(key, "JWT", "https://idp.example", srv.URL, "svc"), "", "invalid_grant"},
		{"another client", jag(key, "oauth-id-jag+jwt", "https://idp.example", srv.URL, "other"), "", "invalid_grant"},
		{"another audience", jag(key, "oauth-id-jag+jwt", "https://idp.example", "https://as.example", "svc"), "", "invalid_grant"},
		{"an untrusted issuer", jag(untrusted, "oauth-id-jag+jwt", "https://evil.example", srv.URL, "svc"), "", "invalid_grant"},
		{"a forged signature", jag(untrusted, "oauth-id-jag+jwt", "https://idp.example", srv.URL, "svc"), "", "invalid_grant"},
		{"beyond its scope", jag(key, "oauth-id-jag+jwt", "https://idp.example", srv.URL, "svc"), "mcp:admin", "invalid_scope"},
	} {
		_, err := redeem(tc.assertion, tc.scope)
		var re *oauth2.RetrieveError
		require.ErrorAs(t, err, &re, tc.name)
		assert.Equal(t, tc.code, re.ErrorCode, tc.name)
	}
}
