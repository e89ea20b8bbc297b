package authserver

import (
	"crypto"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

const grantJWTBearer = "urn:ietf:params:oauth:grant-type:jwt-bearer"

// TrustIDJAGIssuer makes the server redeem, with the JWT bearer grant, the
// identity assertion JWT authorization grants (ID-JAGs) of the enterprise
// IdP issuer, verified with key.
func (s *Server) TrustIDJAGIssuer(issuer string, key crypto.PublicKey) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.idjag == nil {
		s.idjag = map[string]crypto.PublicKey{}
	}
	s.idjag[issuer] = key
}

// idjagClaims are the claims of an ID-JAG beside the registered ones.
type idjagClaims struct {
	ClientID string `json:"client_id"`
	Resource string `json:"resource"`
	Scope    string `json:"scope"`
}

// redeemIDJAG is the JWT bearer grant (RFC 7523 §2.1) with an ID-JAG from
// a trusted IdP: typ oauth-id-jag+jwt, signed by the IdP, for this issuer
// (aud), not expired, naming the authenticated client and a resource the
// server serves. The token gets the scope asked, which must be within the
// ID-JAG's, or the ID-JAG's when none is asked; no refresh token.
func (s *Server) redeemIDJAG(form url.Values, client *Client) (*tokenResponse, error) {
	jag, err := s.verifyIDJAG(form.Get("assertion"))
	if err != nil {
		return nil, invalidGrant("the assertion: " + err.Error())
	}
	if jag.ClientID != client.ID {
		return nil, invalidGrant("the ID-JAG names another client")
	}
	granted := strings.Fields(jag.Scope)
	scopes := granted
	if asked := strings.Fields(form.Get("scope")); len(asked) > 0 {
		for _, sc := range asked {
			if !slices.Contains(granted, sc) {
				return nil, &tokenError{http.StatusBadRequest, "invalid_scope", "scope " + sc + " is not in the ID-JAG"}
			}
		}
		scopes = asked
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.resources[jag.Resource] {
		return nil, &tokenError{http.StatusBadRequest, "invalid_target", "the ID-JAG's resource is not served here"}
	}
	resp := s.issueLocked(client.ID, scopes, jag.Resource, secret())
	if resp.RefreshToken != "" {
		delete(s.refresh, resp.RefreshToken)
		resp.RefreshToken = ""
	}
	return resp, nil
}

func (s *Server) verifyIDJAG(raw string) (*idjagClaims, error) {
	tok, err := jwt.ParseSigned(raw, []jose.SignatureAlgorithm{jose.ES256, jose.RS256})
	if err != nil {
		return nil, err
	}
	if typ, _ := tok.Headers[0].ExtraHeaders["typ"].(string); typ != "oauth-id-jag+jwt" {
		return nil, fmt.Errorf("typ %q, not oauth-id-jag+jwt", typ)
	}
	var unverified jwt.Claims
	if err := tok.UnsafeClaimsWithoutVerification(&unverified); err != nil {
		return nil, err
	}
	s.mu.Lock()
	key := s.idjag[unverified.Issuer]
	s.mu.Unlock()
	if key == nil {
		return nil, fmt.Errorf("issuer %q is not trusted", unverified.Issuer)
	}
	var claims jwt.Claims
	var jag idjagClaims
	if err := tok.Claims(key, &claims, &jag); err != nil {
		return nil, err
	}
	if err := claims.Validate(jwt.Expected{AnyAudience: jwt.Audience{s.URL}, Time: time.Now()}); err != nil {
		return nil, err
	}
	return &jag, nil
}
