package grants

import (
	"context"
	"errors"
	"net/url"

	"github.com/stepup-go/stepup"
	"github.com/stepup-go/stepup/discovery"
)

// ClientCredentials is a [stepup.Escalator] for a client that acts on its
// own behalf, with no person: it gets each token with the client
// credentials grant (RFC 6749 §4.4), as the MCP OAuth client credentials
// extension describes, at the token endpoint of the resource's
// authorization server, found through package discovery.
//
// Every challenge that calls for a new authorization is met by a token
// request, with no prompt: the first 401, a 401 for an expired or revoked
// token (a client credentials token has no refresh token, RFC 6749
// §4.4.3), and a 403 insufficient_scope, for the requested ∪ granted ∪
// challenged scopes. An authorization server that will not grant those
// (invalid_scope, unauthorized_client) ends the request with an error
// wrapping [stepup.ErrDeclined], which the guard remembers as it does a
// person's refusal. A challenge for a user authentication (RFC 9470) or
// for claims is declined at once: there is no user.
type ClientCredentials struct {
	// Auth is how the client authenticates: a [ClientSecret] or a
	// [PrivateKeyJWT]. Required.
	Auth ClientAuth

	// Discovery fetches the metadata and sends the token requests under
	// its policy. Nil means a [discovery.Client] with its defaults.
	Discovery *discovery.Client

	// AuthorizationServer, when set, is the issuer to use among those the
	// resource lists; others are not used.
	AuthorizationServer string

	// EndpointParams are added to every token request, as with
	// [golang.org/x/oauth2/clientcredentials.Config]: audience, say, for
	// servers that bind tokens to an audience parameter rather than to
	// the RFC 8707 resource, which is sent as well. A parameter the grant
	// sets cannot be overridden.
	EndpointParams url.Values

	d discoverer
}

// Escalate gets a new token for req; see [ClientCredentials].
func (c *ClientCredentials) Escalate(ctx context.Context, req *stepup.EscalationRequest) (*stepup.Grant, error) {
	if c.Auth == nil {
		return nil, errors.New("grants: ClientCredentials needs an Auth")
	}
	if err := noPerson(req); err != nil {
		return nil, err
	}
	disc := c.d.client(c.Discovery)
	t, err := discover(ctx, disc, req, c.AuthorizationServer, GrantClientCredentials)
	if err != nil {
		return nil, err
	}
	scopes := t.scopes(req)
	r := &tokenRequest{
		as:        t.as,
		grantType: GrantClientCredentials,
		scopes:    scopes,
		params:    url.Values{"resource": {t.prm.Resource}}, // RFC 8707 §2
		auth:      c.Auth,
		extra:     c.EndpointParams,
		dpop:      req.DPoP,
	}
	tok, err := r.send(ctx, tokenClient(disc, t.prm.Resource, req.DPoP))
	if err != nil {
		return nil, err
	}
	if tok, err = accessToken(tok, t.as.TokenEndpoint, r.dpop != nil); err != nil {
		return nil, err
	}
	return grant(tok, t, scopes), nil
}
