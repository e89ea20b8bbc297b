package oauthtest

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

// signAlgs are the algorithms the server accepts in JWTs.
var signAlgs = []jose.SignatureAlgorithm{jose.ES256, jose.ES384, jose.ES512, jose.RS256, jose.PS256, jose.EdDSA}

// TrustJWTIssuer makes the server redeem, with the JWT bearer grant (RFC
// 7523 §2.1), the assertions of issuer, verified with key: the tokens a
// platform gives its workloads.
func (s *Server) TrustJWTIssuer(issuer string, key crypto.PublicKey) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.workloads == nil {
		s.workloads = map[string]crypto.PublicKey{}
	}
	s.workloads[issuer] = key
}

// checkClientAssertion verifies a private_key_jwt client assertion (RFC
// 7523 §3): its type, signature, iss = sub = a private_key_jwt client's
// ID, its audience, expiry, and a jti not seen before.
func (s *Server) checkClientAssertion(f url.Values) (*Client, error) {
	if f.Get("client_assertion_type") != "urn:ietf:params:oauth:client-assertion-type:jwt-bearer" {
		return nil, fmt.Errorf("client_assertion_type %q", f.Get("client_assertion_type"))
	}
	tok, err := jwt.ParseSigned(f.Get("client_assertion"), signAlgs)
	if err != nil {
		return nil, err
	}
	var unverified jwt.Claims
	if err := tok.UnsafeClaimsWithoutVerification(&unverified); err != nil {
		return nil, err
	}
	s.mu.Lock()
	c := s.clients[unverified.Issuer]
	s.mu.Unlock()
	if c == nil || c.authMethod() != "private_key_jwt" || c.Key == nil {
		return nil, fmt.Errorf("no private_key_jwt client %q", unverified.Issuer)
	}
	var claims jwt.Claims
	if err := tok.Claims(c.Key, &claims); err != nil {
		return nil, err
	}
	aud := s.AssertionAudience
	if aud == "" {
		aud = s.IssuerID()
	}
	if err := claims.Validate(jwt.Expected{Issuer: c.ID, Subject: c.ID, AnyAudience: jwt.Audience{aud}, Time: time.Now()}); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.jtis == nil {
		s.jtis = map[string]bool{}
	}
	if claims.ID == "" || s.jtis[claims.ID] {
		return nil, fmt.Errorf("jti %q missing or replayed", claims.ID)
	}
	s.jtis[claims.ID] = true
	return c, nil
}

// redeemJWTBearer is the JWT bearer grant (RFC 7523 §2.1): an ID-JAG from
// a trusted IdP for an authenticated client, or the assertion of a trusted
// workload issuer, with or without client authentication.
func (s *Server) redeemJWTBearer(form url.Values, client *Client) (*tokenResponse, error) {
	tok, err := jwt.ParseSigned(form.Get("assertion"), signAlgs)
	if err != nil {
		return nil, invalidGrant("the assertion: " + err.Error())
	}
	if typ, _ := tok.Headers[0].ExtraHeaders["typ"].(string); typ == "oauth-id-jag+jwt" {
		if client == nil {
			return nil, &tokenError{http.StatusUnauthorized, "invalid_client", "an ID-JAG needs client authentication"}
		}
		return s.redeemIDJAG(form, client)
	}
	if err := s.verifyWorkload(tok); err != nil {
		return nil, invalidGrant("the assertion: " + err.Error())
	}
	scopes := strings.Fields(form.Get("scope"))
	clientID := ""
	if client != nil {
		clientID = client.ID
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	resource, err := s.grantResource(form)
	if err != nil {
		return nil, err
	}
	return s.issueLocked(clientID, scopes, scopes, resource, "", "", secret(), s.RefreshWithClientGrants), nil
}

// verifyWorkload checks an assertion of a trusted workload issuer.
func (s *Server) verifyWorkload(tok *jwt.JSONWebToken) error {
	return s.verifySigned(tok, &s.workloads)
}

// verifySigned checks a JWT of an issuer in *trusted (read with mu held):
// its signature by the issuer's key, this server as its audience, and its
// expiry. extra receives the claims beside the registered ones.
func (s *Server) verifySigned(tok *jwt.JSONWebToken, trusted *map[string]crypto.PublicKey, extra ...any) error {
	var unverified jwt.Claims
	if err := tok.UnsafeClaimsWithoutVerification(&unverified); err != nil {
		return err
	}
	s.mu.Lock()
	key := (*trusted)[unverified.Issuer]
	s.mu.Unlock()
	if key == nil {
		return fmt.Errorf("issuer %q is not trusted", unverified.Issuer)
	}
	var claims jwt.Claims
	if err := tok.Claims(key, append([]any{&claims}, extra...)...); err != nil {
		return err
	}
	return claims.Validate(jwt.Expected{AnyAudience: jwt.Audience{s.IssuerID()}, Time: time.Now()})
}

// grantResource is the resource a grant with no person is for: the one
// the request names, or the server's one when it names none, as a server
// may apply a default (RFC 8707 §2). Call with mu held.
func (s *Server) grantResource(form url.Values) (string, error) {
	resource := form.Get("resource")
	if resource == "" && len(s.resources) == 1 {
		resource = s.resources[0]
	}
	if len(s.resources) == 0 || !slices.Contains(s.resources, resource) {
		return "", invalidTarget("unknown resource")
	}
	return resource, nil
}
