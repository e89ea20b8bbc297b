package grants_test

import (
	"context"
	"errors"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stepup-go/stepup"
	"github.com/stepup-go/stepup/grants"
)

// enterpriseWorld is a world whose authorization server trusts the ID-JAGs
// of an enterprise IdP, with the client registered at both.
type enterpriseWorld struct {
	*world
	idp      *idp
	idTokens atomic.Int32 // IDToken calls
}

func newEnterpriseWorld(t *testing.T) *enterpriseWorld {
	w := &enterpriseWorld{world: newWorld(t), idp: newIdP(t)}
	w.as.GrantTypesSupported = []string{"urn:ietf:params:oauth:grant-type:jwt-bearer"}
	register(w.as, &asClient{id: "mcp-client", secret: "mcp-secret-1", method: "client_secret_basic"})
	w.as.TrustIDJAGIssuer(w.idp.issuer, &w.idp.key.PublicKey)
	w.idp.mcpID[w.as.IssuerID()] = "mcp-client"
	return w
}

func (w *enterpriseWorld) escalator(t *testing.T, idToken func() string) *grants.Enterprise {
	return &grants.Enterprise{
		IDToken: func(context.Context) (string, error) {
			w.idTokens.Add(1)
			return idToken(), nil
		},
		IdPIssuer: w.idp.issuer,
		IdPClient: grants.PublicClient{ClientID: w.idp.clientID},
		Client:    grants.ClientSecret{ClientID: "mcp-client", Secret: "mcp-secret-1"},
		Discovery: disc(),
	}
}

// The three tokens: the ID token is exchanged at the IdP for an ID-JAG
// for the authorization server and the resource, which the authorization
// server redeems for an access token. Step-up runs both steps for the
// union; expiry of the access token, both again with IDToken's current
// ID token.
func TestEnterprise(t *testing.T) {
	w := newEnterpriseWorld(t)
	w.rs.needs = map[string]string{"/mcp/read": "read", "/mcp/write": "write"}
	idToken := w.idp.idToken(t, "alice@example.com", time.Hour)
	w.client(t, w.escalator(t, func() string { return idToken }))

	_, err := w.get(t, "/mcp/read")
	require.NoError(t, err)
	ex := w.idp.exchangeRequests()
	require.Len(t, ex, 1)
	assert.Equal(t, "urn:ietf:params:oauth:grant-type:token-exchange", ex[0].Get("grant_type"))
	assert.Equal(t, "urn:ietf:params:oauth:token-type:id-jag", ex[0].Get("requested_token_type"))
	assert.Equal(t, "urn:ietf:params:oauth:token-type:id_token", ex[0].Get("subject_token_type"))
	assert.Equal(t, idToken, ex[0].Get("subject_token"))
	assert.Equal(t, w.as.IssuerID(), ex[0].Get("audience"))
	assert.Equal(t, w.rs.resource, ex[0].Get("resource"))
	assert.Equal(t, "read", ex[0].Get("scope"))
	reqs := w.as.TokenRequests()
	require.Len(t, reqs, 1)
	assert.Equal(t, "urn:ietf:params:oauth:grant-type:jwt-bearer", reqs[0].Form.Get("grant_type"))
	assert.Equal(t, "client_secret_basic", reqs[0].AuthMethod)

	_, err = w.get(t, "/mcp/write")
	require.NoError(t, err)
	ex = w.idp.exchangeRequests()
	require.Len(t, ex, 2)
	assert.Equal(t, "read write", ex[1].Get("scope"))
	assert.Equal(t, "read write", w.as.TokenRequests()[1].Form.Get("scope"))

	// The access token expires: the 401 gets a new ID-JAG, from a newer
	// ID token.
	idToken = w.idp.idToken(t, "alice@example.com", time.Hour)
	w.as.Revoke(w.rs.tokens[len(w.rs.tokens)-1])
	_, err = w.get(t, "/mcp/write")
	require.NoError(t, err)
	ex = w.idp.exchangeRequests()
	require.Len(t, ex, 3)
	assert.Equal(t, idToken, ex[2].Get("subject_token"))
	assert.Equal(t, int32(3), w.idTokens.Load())
	assert.Len(t, w.as.TokenRequests(), 3)
}

// The IdP's policy refusing the wider scope is a refusal, remembered; an
// expired ID token is not, so that the next request, with IDToken's next
// one, can go through.
func TestEnterpriseRefused(t *testing.T) {
	w := newEnterpriseWorld(t)
	w.rs.needs = map[string]string{"/mcp/read": "read", "/mcp/admin": "admin"}
	w.idp.refuse = map[string]string{"admin": "invalid_scope"}
	expired := w.idp.idToken(t, "alice@example.com", -time.Minute)
	idToken := expired
	w.client(t, w.escalator(t, func() string { return idToken }))

	_, err := w.get(t, "/mcp/read")
	var te *grants.TokenError
	require.ErrorAs(t, err, &te)
	assert.Equal(t, "invalid_grant", te.Code)
	assert.NotErrorIs(t, err, stepup.ErrDeclined)
	assert.NotContains(t, err.Error(), expired)
	assert.Empty(t, w.as.TokenRequests(), "no ID-JAG, nothing to redeem")

	idToken = w.idp.idToken(t, "alice@example.com", time.Hour)
	_, err = w.get(t, "/mcp/read")
	require.NoError(t, err)

	_, err = w.get(t, "/mcp/admin")
	require.ErrorIs(t, err, stepup.ErrDeclined)
	n := len(w.idp.exchangeRequests())
	_, err = w.get(t, "/mcp/admin")
	require.ErrorIs(t, err, stepup.ErrDeclined)
	assert.Len(t, w.idp.exchangeRequests(), n, "remembered: no second exchange")
}

// An IdP that answers with another token type gets no ID-JAG redeemed.
func TestEnterpriseWrongIssuedTokenType(t *testing.T) {
	w := newEnterpriseWorld(t)
	idp := w.idp
	inner := idp.srv.Config.Handler
	idp.srv.Config.Handler = http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/token" {
			writeJSON(rw, http.StatusOK, map[string]any{"access_token": "an-access-token", "issued_token_type": "urn:ietf:params:oauth:token-type:access_token", "token_type": "Bearer"})
			return
		}
		inner.ServeHTTP(rw, r)
	})
	idToken := idp.idToken(t, "alice@example.com", time.Hour)
	w.client(t, w.escalator(t, func() string { return idToken }))
	_, err := w.get(t, "/mcp/read")
	var te *grants.TokenError
	require.ErrorAs(t, err, &te)
	assert.Contains(t, te.Description, "issued_token_type")
	assert.Empty(t, w.as.TokenRequests())
}

func TestEnterpriseNeedsConfiguration(t *testing.T) {
	_, err := (&grants.Enterprise{}).Escalate(context.Background(), &stepup.EscalationRequest{Resource: "https://mcp.example/mcp"})
	require.Error(t, err)
	assert.False(t, errors.Is(err, stepup.ErrDeclined))
}
