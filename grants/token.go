package grants

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/stepup-go/stepup"
	"github.com/stepup-go/stepup/discovery"
	"github.com/stepup-go/stepup/dpop"
)

// The grant types (RFC 6749 §4.4, RFC 7523 §2.1, RFC 8693 §2.1) and token
// types (RFC 8693 §3, the identity assertion authorization grant) this
// package sends.
const (
	GrantClientCredentials = "client_credentials"
	GrantJWTBearer         = "urn:ietf:params:oauth:grant-type:jwt-bearer"
	GrantTokenExchange     = "urn:ietf:params:oauth:grant-type:token-exchange"
	TokenTypeIDToken       = "urn:ietf:params:oauth:token-type:id_token"
	TokenTypeIDJAG         = "urn:ietf:params:oauth:token-type:id-jag"
)

// tokenRequest is one request to a token endpoint (RFC 6749 §3.2).
type tokenRequest struct {
	as        *discovery.AuthServer // whose token endpoint; the audience of a client assertion
	grantType string
	scopes    stepup.Scopes
	params    url.Values   // the grant's own parameters
	extra     url.Values   // the caller's EndpointParams
	auth      ClientAuth   // nil: no client authentication
	secrets   []string     // the grant's credentials (an assertion, a subject token)
	dpop      *dpop.Config // nil: no DPoP proof (RFC 9449 §5)
}

// send makes the request through x/oauth2's client credentials flow,
// whose parameters may name another grant_type, with hc, and returns the
// token it got. hc is a [discovery.Client.RetryingHTTPClient]: the request
// is tried again only when the server cannot have acted on it, since an
// assertion's jti may be used once only (RFC 7523 §3). Its errors never
// hold a credential.
func (r *tokenRequest) send(ctx context.Context, hc *http.Client) (*oauth2.Token, error) {
	cred := &credential{style: oauth2.AuthStyleInParams}
	if r.auth != nil {
		var err error
		if cred, err = r.auth.credential(r.as); err != nil {
			return nil, err
		}
	}
	params := url.Values{"grant_type": {r.grantType}}
	for _, add := range []url.Values{r.params, cred.params, r.extra} {
		for k, v := range add {
			if params.Has(k) || k == "scope" || k == "client_id" || k == "client_secret" {
				return nil, fmt.Errorf("grants: the token request's %s is set by the grant, not by EndpointParams", k)
			}
			params[k] = v
		}
	}
	cfg := &clientcredentials.Config{
		ClientID:       cred.clientID,
		ClientSecret:   cred.secret,
		TokenURL:       r.as.TokenEndpoint,
		Scopes:         r.scopes,
		EndpointParams: params,
		AuthStyle:      cred.style,
	}
	if r.dpop != nil {
		if err := r.dpop.Key.Accepted(r.as.DPoPSigningAlgValuesSupported); err != nil {
			return nil, fmt.Errorf("grants: %w", err)
		}
	}
	tok, err := cfg.Token(context.WithValue(ctx, oauth2.HTTPClient, hc))
	if err != nil {
		return nil, r.failure(err, append(cred.secrets, r.secrets...))
	}
	return tok, nil
}

// failure turns an x/oauth2 error into a [*TokenError], or a wrapped
// error, with no credential in it.
func (r *tokenRequest) failure(err error, secrets []string) error {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		te := &TokenError{
			Endpoint:    r.as.TokenEndpoint,
			GrantType:   r.grantType,
			Code:        redact(re.ErrorCode, secrets),
			Description: redact(re.ErrorDescription, secrets),
		}
		if re.Response != nil {
			te.StatusCode = re.Response.StatusCode
			if te.Code == "" {
				te.Description = "not an OAuth error response (Content-Type " + re.Response.Header.Get("Content-Type") + ")"
			}
		}
		return te
	}
	var ue *url.Error
	if errors.As(err, &ue) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		// No answer: the network, or the request's end. The URL is the
		// token endpoint's, which holds no credential.
		return fmt.Errorf("grants: token request to %s: %w", r.as.TokenEndpoint, err)
	}
	// An answer with a 2xx status that is no token response: x/oauth2
	// could not parse it, or it held no access_token.
	return &TokenError{Endpoint: r.as.TokenEndpoint, GrantType: r.grantType, Description: redact(err.Error(), secrets)}
}

// redact replaces every secret in s by [REDACTED].
func redact(s string, secrets []string) string {
	for _, x := range secrets {
		if len(x) >= 4 { // shorter ones would blank out ordinary words
			s = strings.ReplaceAll(s, x, "[REDACTED]")
		}
	}
	return s
}

// accessToken checks that tok can be presented to a resource: an access
// token of type Bearer, or DPoP when the request carried a proof (bound)
// (RFC 6749 §7.1: a client must not use a token whose type it does not
// understand). Its refresh token, if any, is dropped:
// the Escalators of this package run their grant again instead, with a
// fresh assertion or credential, which is what RFC 6749 §4.4.3 expects of
// a client credentials client.
func accessToken(tok *oauth2.Token, endpoint string, bound bool) (*oauth2.Token, error) {
	if tok.AccessToken == "" {
		return nil, &TokenError{Endpoint: endpoint, Description: "the token response has no access_token"}
	}
	if tok.Type() != "Bearer" && !(bound && strings.EqualFold(tok.TokenType, dpop.Scheme)) {
		return nil, &TokenError{Endpoint: endpoint, Description: fmt.Sprintf("the token_type is %q, not Bearer", clip(tok.TokenType))}
	}
	tok.RefreshToken = ""
	return tok, nil
}

// tokenClient is the client of a token request for resource: through the
// token-request retries, each try with a fresh proof of d's key when d is
// not nil (RFC 9449 §5: the token is bound to the key).
func tokenClient(disc *discovery.Client, resource string, d *dpop.Config) *http.Client {
	if d == nil {
		return disc.RetryingHTTPClient(resource)
	}
	return disc.Retrying(d.Client(disc.HTTPClient(resource)))
}

// grant is what an Escalator of this package returns for tok from t.
func grant(tok *oauth2.Token, t *target, scopes stepup.Scopes) *stepup.Grant {
	g := &stepup.Grant{Token: tok, Issuer: t.as.Issuer}
	if len(scopes) > 0 {
		g.Scopes = scopes
	}
	return g
}
