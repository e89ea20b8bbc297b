package grants

import (
	"context"
	"net/http"
	"net/url"

	"github.com/stepup-go/stepup"
	"github.com/stepup-go/stepup/dpop"
)

// redeemAssertion presents assertion with the JWT bearer grant (RFC 7523
// §2.1) at t's token endpoint, for scopes and t's resource (RFC 8707 §2),
// authenticating as auth (nil: not at all, RFC 7523 §3.1 does not
// require it), with the caller's extra parameters, and returns the grant
// of the access token, bound to bound's key when not nil (RFC 9449 §5).
func redeemAssertion(ctx context.Context, hc *http.Client, t *target, assertion string, scopes stepup.Scopes, auth ClientAuth, extra url.Values, bound *dpop.Config) (*stepup.Grant, error) {
	r := &tokenRequest{
		as:        t.as,
		grantType: GrantJWTBearer,
		scopes:    scopes,
		params:    url.Values{"assertion": {assertion}, "resource": {t.prm.Resource}},
		auth:      auth,
		secrets:   []string{assertion},
		extra:     extra,
		dpop:      bound,
	}
	tok, err := r.send(ctx, hc)
	if err != nil {
		return nil, err
	}
	if tok, err = accessToken(tok, t.as.TokenEndpoint, bound != nil); err != nil {
		return nil, err
	}
	return grant(tok, t, scopes), nil
}
