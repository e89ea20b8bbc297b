package grants

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"

	"github.com/stepup-go/stepup"
	"github.com/stepup-go/stepup/discovery"
)

// Enterprise is a [stepup.Escalator] for enterprise-managed authorization,
// the MCP extension built on the identity assertion authorization grant:
// the user's enterprise identity provider (IdP), not a consent screen of
// the MCP server's authorization server, decides what the client may
// access. Each escalation takes three tokens:
//
//  1. the user's ID token from the IdP (OpenID Connect Core 1.0 §2), from
//     IDToken, typically kept from the user's single sign-on;
//  2. an identity assertion JWT authorization grant (ID-JAG), for which
//     the ID token is exchanged at the IdP's token endpoint (RFC 8693
//     §2.1, requested_token_type urn:ietf:params:oauth:token-type:id-jag),
//     with the MCP authorization server's issuer as audience and the MCP
//     server as resource;
//  3. the access token, for which the ID-JAG is presented at the MCP
//     authorization server's token endpoint with the JWT bearer grant
//     (RFC 7523 §2.1).
//
// On step-up (a 403 insufficient_scope), all three steps run again for
// the requested ∪ granted ∪ challenged scopes, asked of the IdP and then
// of the authorization server; either refusing them (invalid_scope)
// ends the request with an error wrapping [stepup.ErrDeclined], which the
// guard remembers. When the access token expires (a 401 follows: the
// grant has no refresh token here), the same: a fresh ID-JAG from the ID
// token IDToken returns then. The ID-JAG is never kept: it lives minutes
// and serves one token request. An expired ID token is IDToken's to
// renew (with its OpenID Connect refresh token, or a new login); an IdP
// that refuses one answers invalid_grant, which comes back as a
// [*TokenError] that the guard does not remember, so that the next
// request tries again with IDToken's next ID token.
type Enterprise struct {
	// IDToken returns the user's current ID token from the IdP, issued to
	// the client registered there (IdPClient). Required. See
	// [IDTokenFrom], for the token source of an OpenID Connect login.
	IDToken func(ctx context.Context) (string, error)

	// IdPIssuer is the IdP's issuer identifier; its token endpoint comes
	// from its metadata (RFC 8414, OpenID Connect Discovery 1.0) unless
	// IdPTokenEndpoint is set. Required.
	IdPIssuer string

	// IdPTokenEndpoint, when set, is the IdP's token endpoint, used
	// without fetching its metadata.
	IdPTokenEndpoint string

	// IdPClient is how the client authenticates at the IdP: a
	// [ClientSecret], a [PrivateKeyJWT], or a [PublicClient]. Required.
	IdPClient ClientAuth

	// Client is how the client authenticates at the MCP server's
	// authorization server, where the ID-JAG names it as client_id.
	// Required.
	Client ClientAuth

	// Discovery fetches the metadata and sends the token requests under
	// its policy. Nil means a [discovery.Client] with its defaults.
	Discovery *discovery.Client

	// AuthorizationServer, when set, is the issuer to use among those the
	// resource lists; others are not used.
	AuthorizationServer string

	d discoverer
}

// Escalate runs the three steps for req; see [Enterprise].
func (e *Enterprise) Escalate(ctx context.Context, req *stepup.EscalationRequest) (*stepup.Grant, error) {
	if e.IDToken == nil || e.IdPIssuer == "" || e.IdPClient == nil || e.Client == nil {
		return nil, errors.New("grants: Enterprise needs IDToken, IdPIssuer, IdPClient and Client")
	}
	if err := noPerson(req); err != nil {
		return nil, err
	}
	disc := e.d.client(e.Discovery)
	t, err := discover(ctx, disc, req, e.AuthorizationServer, GrantJWTBearer)
	if err != nil {
		return nil, err
	}
	idp, err := e.idp(ctx, disc, t.prm.Resource)
	if err != nil {
		return nil, err
	}
	idToken, err := subjectToken(ctx, e.IDToken, "the ID token")
	if err != nil {
		return nil, err
	}
	scopes := t.scopes(req)
	hc := disc.RetryingHTTPClient(t.prm.Resource)
	jag, err := e.exchange(ctx, hc, idp, t, idToken, scopes)
	if err != nil {
		return nil, err
	}
	// The ID-JAG is the IdP's to give; the access token, bound to the
	// source's key, the resource's authorization server's (RFC 9449 §5).
	return redeemAssertion(ctx, tokenClient(disc, t.prm.Resource, req.DPoP), t, jag, scopes, e.Client, nil, req.DPoP)
}

// idp returns the IdP's metadata, or as much of it as IdPTokenEndpoint
// gives.
func (e *Enterprise) idp(ctx context.Context, disc *discovery.Client, resource string) (*discovery.AuthServer, error) {
	if e.IdPTokenEndpoint != "" {
		return &discovery.AuthServer{Issuer: e.IdPIssuer, TokenEndpoint: e.IdPTokenEndpoint}, nil
	}
	as, err := disc.AuthServer(ctx, resource, e.IdPIssuer)
	if err != nil {
		return nil, fmt.Errorf("grants: the IdP's metadata: %w", err)
	}
	if as.TokenEndpoint == "" {
		return nil, fmt.Errorf("grants: the IdP %s's metadata has no token_endpoint", e.IdPIssuer)
	}
	return as, nil
}

// exchange trades the ID token for an ID-JAG for t at the IdP (RFC 8693
// §2.1) and checks the answer's issued_token_type (RFC 8693 §2.2.1).
func (e *Enterprise) exchange(ctx context.Context, hc *http.Client, idp *discovery.AuthServer, t *target, idToken string, scopes stepup.Scopes) (string, error) {
	r := &tokenRequest{
		as:        idp,
		grantType: GrantTokenExchange,
		scopes:    scopes,
		params: url.Values{
			"requested_token_type": {TokenTypeIDJAG},
			"audience":             {t.as.Issuer},
			"resource":             {t.prm.Resource},
			"subject_token":        {idToken},
			"subject_token_type":   {TokenTypeIDToken},
		},
		auth:    e.IdPClient,
		secrets: []string{idToken},
	}
	tok, err := r.send(ctx, hc)
	if err != nil {
		return "", err
	}
	if got, _ := tok.Extra("issued_token_type").(string); got != TokenTypeIDJAG {
		return "", &TokenError{Endpoint: idp.TokenEndpoint, GrantType: GrantTokenExchange,
			Description: fmt.Sprintf("the issued_token_type is %q, not %s", clip(got), TokenTypeIDJAG)}
	}
	return tok.AccessToken, nil
}
