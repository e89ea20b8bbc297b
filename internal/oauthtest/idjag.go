package oauthtest

import (
	"crypto"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"

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
// ID-JAG's, or the ID-JAG's when none is asked; no refresh token unless
// RefreshWithClientGrants.
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
	if len(s.resources) == 0 || !s.resourceKnown(jag.Resource) {
		return nil, invalidTarget("the ID-JAG's resource is not served here")
	}
	return s.issueLocked(client.ID, scopes, scopes, jag.Resource, "", "", secret(), s.RefreshWithClientGrants), nil
}

func (s *Server) verifyIDJAG(raw string) (*idjagClaims, error) {
	tok, err := jwt.ParseSigned(raw, signAlgs)
	if err != nil {
		return nil, err
	}
	if typ, _ := tok.Headers[0].ExtraHeaders["typ"].(string); typ != "oauth-id-jag+jwt" {
		return nil, fmt.Errorf("typ %q, not oauth-id-jag+jwt", typ)
	}
	var jag idjagClaims
	if err := s.verifySigned(tok, &s.idjag, &jag); err != nil {
		return nil, err
	}
	return &jag, nil
}
