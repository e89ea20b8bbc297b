package grants_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/stepup-go/stepup"
	"github.com/stepup-go/stepup/discovery"
	"github.com/stepup-go/stepup/grants"
)

// world is a resource server, its authorization server, and a client of
// them: an http.Client through a stepup.Transport with esc.
type world struct {
	as  *authServer
	rs  *resourceServer
	ts  *stepup.TokenSource
	hc  *http.Client
	esc stepup.Escalator
}

func newWorld(t *testing.T) *world {
	as := newAuthServer(t)
	rs := newResourceServer(t, as)
	return &world{as: as, rs: rs}
}

// client makes the world's source, escalating with esc, and the
// http.Client over it.
func (w *world) client(t *testing.T, esc stepup.Escalator) *http.Client {
	ts, err := stepup.NewTokenSource(w.rs.resource, nil, stepup.WithEscalator(esc))
	require.NoError(t, err)
	w.ts, w.esc = ts, esc
	w.hc = &http.Client{Transport: &stepup.Transport{Source: w.ts}}
	t.Cleanup(w.hc.CloseIdleConnections)
	return w.hc
}

// get fetches path of the resource server and returns the body.
func (w *world) get(t *testing.T, path string) (string, error) {
	t.Helper()
	resp, err := w.hc.Get(w.rs.srv.URL + path)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	if resp.StatusCode != http.StatusOK {
		return string(b), errors.New(resp.Status)
	}
	return string(b), nil
}

// disc allows the test servers' loopback addresses, as a client of a
// local resource does.
func disc() *discovery.Client { return &discovery.Client{} }

func TestClientCredentialsSecret(t *testing.T) {
	for _, tc := range []struct {
		name       string
		listed     []string // token_endpoint_auth_methods_supported
		method     string   // ClientSecret.Method
		registered string   // what the server expects
	}{
		{"basic by default", nil, "", "client_secret_basic"},
		{"basic when listed", []string{"client_secret_post", "client_secret_basic"}, "", "client_secret_basic"},
		{"post when only post is listed", []string{"client_secret_post"}, "", "client_secret_post"},
		{"post when asked", nil, grants.MethodPost, "client_secret_post"},
		{"a secret that needs escaping, basic", nil, grants.MethodBasic, "client_secret_basic"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t)
			w.as.AuthMethods = tc.listed
			w.as.GrantTypesSupported = []string{"client_credentials"}
			secret := "s3cret:/+ &é"
			register(w.as, &asClient{id: "svc", secret: secret, method: tc.registered})
			w.rs.needs["/mcp/read"] = "read"
			w.client(t, &grants.ClientCredentials{Auth: grants.ClientSecret{ClientID: "svc", Secret: secret, Method: tc.method}, Discovery: disc()})

			body, err := w.get(t, "/mcp/read")
			require.NoError(t, err)
			assert.Equal(t, "ok /mcp/read", body)
			reqs := w.as.TokenRequests()
			require.Len(t, reqs, 1)
			assert.Equal(t, tc.registered, reqs[0].AuthMethod)
			assert.Equal(t, "client_credentials", reqs[0].Form.Get("grant_type"))
			assert.Equal(t, "read", reqs[0].Form.Get("scope"))
			assert.Equal(t, w.rs.resource, reqs[0].Form.Get("resource"))
		})
	}
}

func TestClientCredentialsPrivateKeyJWT(t *testing.T) {
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	ec384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	require.NoError(t, err)
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	_, ed, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	for _, tc := range []struct {
		name string
		key  crypto.Signer
		alg  string
	}{
		{"ES256", ec, ""},
		{"ES384", ec384, "ES384"},
		{"RS256", rsaKey, ""},
		{"PS256", rsaKey, "PS256"},
		{"EdDSA", ed, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t)
			w.as.AuthMethods = []string{"private_key_jwt"}
			register(w.as, &asClient{id: "svc", method: "private_key_jwt", key: tc.key.Public()})
			w.client(t, &grants.ClientCredentials{Auth: grants.PrivateKeyJWT{ClientID: "svc", Key: tc.key, Algorithm: tc.alg, KeyID: "k1"}, Discovery: disc()})

			_, err := w.get(t, "/mcp/a")
			require.NoError(t, err)
			// The token is revoked: the 401 takes a new token, with a new
			// assertion (the server refuses a jti seen before), and never
			// a refresh, though the server sent a refresh token.
			w.as.Revoke(w.rs.tokens[0])
			_, err = w.get(t, "/mcp/a")
			require.NoError(t, err)
			reqs := w.as.TokenRequests()
			require.Len(t, reqs, 2)
			for _, r := range reqs {
				assert.Equal(t, "private_key_jwt", r.AuthMethod)
				assert.Equal(t, "client_credentials", r.Form.Get("grant_type"))
			}
			assert.NotEqual(t, reqs[0].Form.Get("client_assertion"), reqs[1].Form.Get("client_assertion"))
		})
	}
}

// A machine steps up with no person: a 403 insufficient_scope gets a
// token for the union of what was granted and what is challenged; a scope
// the server refuses ends in ErrDeclined, which the guard remembers.
func TestClientCredentialsStepUp(t *testing.T) {
	w := newWorld(t)
	register(w.as, &asClient{id: "svc", secret: "pw-1234", method: "client_secret_basic"})
	w.as.RefuseScopes = map[string]string{"admin": "invalid_scope"}
	w.rs.needs = map[string]string{"/mcp/read": "read", "/mcp/write": "write", "/mcp/admin": "admin"}
	w.client(t, &grants.ClientCredentials{Auth: grants.ClientSecret{ClientID: "svc", Secret: "pw-1234"}, Discovery: disc()})

	_, err := w.get(t, "/mcp/read")
	require.NoError(t, err)
	_, err = w.get(t, "/mcp/write")
	require.NoError(t, err)
	_, err = w.get(t, "/mcp/read") // the new token still reads
	require.NoError(t, err)
	reqs := w.as.TokenRequests()
	require.Len(t, reqs, 2)
	assert.Equal(t, "read", reqs[0].Form.Get("scope"))
	assert.Equal(t, "read write", reqs[1].Form.Get("scope"))

	_, err = w.get(t, "/mcp/admin")
	require.ErrorIs(t, err, stepup.ErrDeclined)
	var te *grants.TokenError
	require.ErrorAs(t, err, &te)
	assert.Equal(t, "invalid_scope", te.Code)
	assert.Equal(t, "read write admin", w.as.TokenRequests()[2].Form.Get("scope"))
	// Remembered: the next request for admin fails at once.
	_, err = w.get(t, "/mcp/admin")
	require.ErrorIs(t, err, stepup.ErrDeclined)
	assert.Len(t, w.as.TokenRequests(), 3)
	// What was granted still serves.
	_, err = w.get(t, "/mcp/write")
	require.NoError(t, err)
	assert.Len(t, w.as.TokenRequests(), 3)
}

// 1,000 concurrent requests drawing the same 403 make one token request.
func TestClientCredentialsConcurrentStepUp(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) }) // after the servers' Cleanups
	w := newWorld(t)
	register(w.as, &asClient{id: "svc", secret: "pw-1234", method: "client_secret_basic"})
	w.rs.needs = map[string]string{"/mcp/read": "read", "/mcp/write": "write"}
	w.client(t, &grants.ClientCredentials{Auth: grants.ClientSecret{ClientID: "svc", Secret: "pw-1234"}, Discovery: disc()})
	w.hc.Transport.(*stepup.Transport).Base = &http.Transport{MaxIdleConnsPerHost: 100}
	_, err := w.get(t, "/mcp/read")
	require.NoError(t, err)

	const n = 1000
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := w.hc.Get(w.rs.srv.URL + "/mcp/write")
			if err != nil {
				errs <- err
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				errs <- errors.New(resp.Status)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	reqs := w.as.TokenRequests()
	require.Len(t, reqs, 2, "one token request for the first 401, one for all the 403s")
	assert.Equal(t, "read write", reqs[1].Form.Get("scope"))
	w.hc.Transport.(*stepup.Transport).Base.(*http.Transport).CloseIdleConnections()
	w.esc.(*grants.ClientCredentials).Discovery.CloseIdleConnections()
	w.rs.srv.CloseClientConnections()
}

func TestClientCredentialsNeedsAuth(t *testing.T) {
	w := newWorld(t)
	w.client(t, &grants.ClientCredentials{Discovery: disc()})
	_, err := w.get(t, "/mcp/a")
	require.ErrorContains(t, err, "needs an Auth")
	assert.Empty(t, w.as.TokenRequests())
}

func TestClientCredentialsGrantNotSupported(t *testing.T) {
	w := newWorld(t)
	w.as.GrantTypesSupported = []string{"authorization_code"}
	register(w.as, &asClient{id: "svc", secret: "pw-1234", method: "client_secret_basic"})
	w.client(t, &grants.ClientCredentials{Auth: grants.ClientSecret{ClientID: "svc", Secret: "pw-1234"}, Discovery: disc()})
	_, err := w.get(t, "/mcp/a")
	require.ErrorIs(t, err, grants.ErrGrantNotSupported)
	require.ErrorIs(t, err, stepup.ErrDeclined)
	assert.Len(t, w.as.TokenRequests(), 1, "the token endpoint has the last word")
	_, err = w.get(t, "/mcp/a")
	require.ErrorIs(t, err, stepup.ErrDeclined)
	assert.Len(t, w.as.TokenRequests(), 1, "remembered")
}

// A machine cannot meet a challenge for a user authentication (RFC 9470):
// it is declined at once, with no token request.
func TestClientCredentialsNoPerson(t *testing.T) {
	esc := &grants.ClientCredentials{Auth: grants.ClientSecret{ClientID: "svc", Secret: "pw-1234"}}
	_, err := esc.Escalate(context.Background(), &stepup.EscalationRequest{Reason: stepup.ReasonUserAuthentication, Resource: "https://mcp.example/mcp"})
	require.ErrorIs(t, err, stepup.ErrDeclined)
	assert.True(t, strings.Contains(err.Error(), "user authentication"), err.Error())
}

// A server that wants the token endpoint as the assertion's audience
// refuses the issuer, and takes the token endpoint when told.
func TestClientCredentialsAudienceTokenEndpoint(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	for _, toEndpoint := range []bool{false, true} {
		w := newWorld(t)
		w.as.AssertionAudience = w.as.IssuerID() + "/token"
		register(w.as, &asClient{id: "svc", method: "private_key_jwt", key: key.Public()})
		w.client(t, &grants.ClientCredentials{Auth: grants.PrivateKeyJWT{ClientID: "svc", Key: key, AudienceTokenEndpoint: toEndpoint}, Discovery: disc()})
		_, err := w.get(t, "/mcp/a")
		if !toEndpoint {
			var te *grants.TokenError
			require.ErrorAs(t, err, &te)
			assert.Equal(t, "invalid_client", te.Code)
			continue
		}
		require.NoError(t, err)
	}
}

// EndpointParams go with every token request; one the grant sets cannot
// be overridden, and nothing is sent then.
func TestClientCredentialsEndpointParams(t *testing.T) {
	w := newWorld(t)
	register(w.as, &asClient{id: "svc", secret: "pw-1234", method: "client_secret_basic"})
	w.client(t, &grants.ClientCredentials{
		Auth:           grants.ClientSecret{ClientID: "svc", Secret: "pw-1234"},
		EndpointParams: url.Values{"audience": {"https://api.example"}},
		Discovery:      disc(),
	})
	_, err := w.get(t, "/mcp/a")
	require.NoError(t, err)
	assert.Equal(t, "https://api.example", w.as.TokenRequests()[0].Form.Get("audience"))

	for _, p := range []string{"grant_type", "resource", "scope", "client_assertion", "client_id", "client_secret"} {
		w := newWorld(t)
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		w.client(t, &grants.ClientCredentials{
			Auth:           grants.PrivateKeyJWT{ClientID: "svc", Key: key},
			EndpointParams: url.Values{p: {"x"}},
			Discovery:      disc(),
		})
		_, err := w.get(t, "/mcp/a")
		require.ErrorContains(t, err, "set by the grant", p)
		assert.Empty(t, w.as.TokenRequests(), p)
	}
}

// Of the resource's authorization servers, one that does not list the
// grant gives way to one that does; AuthorizationServer restricts the
// choice to one issuer.
func TestClientCredentialsChoosesAuthorizationServer(t *testing.T) {
	w := newWorld(t)
	other := newAuthServer(t)
	other.GrantTypesSupported = []string{"authorization_code"}
	w.rs.issuers = []string{other.IssuerID(), w.as.IssuerID()}
	register(w.as, &asClient{id: "svc", secret: "pw-1234", method: "client_secret_basic"})
	w.client(t, &grants.ClientCredentials{Auth: grants.ClientSecret{ClientID: "svc", Secret: "pw-1234"}, Discovery: disc()})
	_, err := w.get(t, "/mcp/a")
	require.NoError(t, err)
	assert.Len(t, w.as.TokenRequests(), 1)
	assert.Empty(t, other.TokenRequests())

	w2 := newWorld(t)
	w2.client(t, &grants.ClientCredentials{Auth: grants.ClientSecret{ClientID: "svc", Secret: "pw-1234"}, AuthorizationServer: "https://as.example", Discovery: disc()})
	_, err = w2.get(t, "/mcp/a")
	require.ErrorContains(t, err, "does not list authorization server https://as.example")
	assert.Empty(t, w2.as.TokenRequests())
}
