package oauthtest

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"golang.org/x/oauth2"
)

// Subject is the resource owner of every grant: the server has one user.
const Subject = "demo-user"

// accessToken is an issued access token.
type accessToken struct {
	clientID string
	scopes   []string
	resource string
	acr      string
	claims   string
	expires  time.Time
	family   string // the grant it belongs to, for revocation
	serial   int    // 1 for the first access token the server issued, and so on
}

// refreshToken is an issued refresh token. A grant's refresh tokens form a
// family; only the newest one may be used.
type refreshToken struct {
	clientID string
	scopes   []string // the scope of the original grant: a refresh never widens it
	resource string
	acr      string
	claims   string
	family   string
	used     bool
}

// tokenError is an RFC 6749 §5.2 error response.
type tokenError struct {
	status int
	code   string
	desc   string
}

func (e *tokenError) Error() string { return e.code + ": " + e.desc }

func invalidGrant(desc string) *tokenError {
	return &tokenError{http.StatusBadRequest, "invalid_grant", desc}
}

func invalidTarget(desc string) *tokenError {
	return &tokenError{http.StatusBadRequest, "invalid_target", desc}
}

// tokenResponse is the RFC 6749 §5.1 success response.
type tokenResponse struct {
	AccessToken  string `json:"access_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int    `json:"expires_in"`
	RefreshToken string `json:"refresh_token,omitempty"`
	Scope        string `json:"scope"`
}

// TokenRequest is a token request the server received, as it saw it.
type TokenRequest struct {
	Form url.Values
	// ClientID is the client the request named, authenticated or not.
	ClientID string
	// AuthMethod is how the client authenticated: "client_secret_basic",
	// "client_secret_post" or "none".
	AuthMethod string
	// BasicAuth is whether the request had HTTP Basic credentials.
	BasicAuth bool
	// ClientSecretOK is whether the secret presented was the client's.
	ClientSecretOK bool
}

// serveToken is the token endpoint (RFC 6749 §3.2).
func (s *Server) serveToken(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		oauthError(w, http.StatusBadRequest, "invalid_request", "")
		return
	}
	grantType := r.PostForm.Get("grant_type")
	client, tr, authErr := s.authenticate(r)
	s.mu.Lock()
	s.stats.TokenRequests[grantType]++
	s.log.tokens = append(s.log.tokens, tr)
	s.mu.Unlock()
	if s.TokenHook != nil && s.TokenHook(w, r) {
		return
	}
	resp, err := s.grant(r.PostForm, grantType, client, authErr)
	if err != nil {
		var te *tokenError
		if !errors.As(err, &te) {
			te = &tokenError{http.StatusInternalServerError, "server_error", err.Error()}
		}
		s.observe(Event{Kind: "refused", GrantType: grantType, Detail: te.Error()})
		oauthError(w, te.status, te.code, te.desc)
		return
	}
	s.observe(Event{Kind: "token", GrantType: grantType, Scopes: strings.Fields(resp.Scope),
		Detail: map[bool]string{true: "with a refresh token", false: "without a refresh token"}[resp.RefreshToken != ""]})
	writeJSON(w, http.StatusOK, resp)
}

// grant serves the token request form by its grant type. A new grant type
// is a case here.
func (s *Server) grant(form url.Values, grantType string, client *Client, authErr error) (*tokenResponse, error) {
	if authErr != nil {
		return nil, authErr
	}
	if !slices.Contains(s.grantTypes(), grantType) {
		return nil, &tokenError{http.StatusBadRequest, "unsupported_grant_type", "grant_type " + grantType}
	}
	// RFC 7523 §3.1: client authentication is optional with a JWT bearer
	// grant; every other grant needs a client.
	if client == nil && grantType != grantJWTBearer {
		return nil, &tokenError{http.StatusUnauthorized, "invalid_client", "client authentication required"}
	}
	if grantType == "client_credentials" || grantType == grantJWTBearer {
		for _, sc := range strings.Fields(form.Get("scope")) {
			if code, ok := s.RefuseScopes[sc]; ok {
				return nil, &tokenError{http.StatusBadRequest, code, "scope " + sc + " is not for this client"}
			}
		}
	}
	switch grantType {
	case "authorization_code":
		return s.redeemCode(form, client)
	case "refresh_token":
		return s.redeemRefresh(form, client)
	case "client_credentials":
		return s.clientCredentials(form, client)
	case grantJWTBearer:
		return s.redeemJWTBearer(form, client)
	}
	return nil, &tokenError{http.StatusBadRequest, "unsupported_grant_type", "grant_type " + grantType}
}

// authenticate checks the credentials of the client of r, whose form is
// parsed, by the method it registered (RFC 6749 §2.3.1, RFC 7523 §2.2). A
// public client only names itself; a request with neither credentials nor
// client_id has no client, and no error.
func (s *Server) authenticate(r *http.Request) (*Client, TokenRequest, error) {
	f := r.PostForm
	tr := TokenRequest{Form: f}
	var given string
	switch id, secret, ok := r.BasicAuth(); {
	case ok:
		// RFC 6749 §2.3.1: both are form-urlencoded inside Basic.
		id, _ = url.QueryUnescape(id)
		given, _ = url.QueryUnescape(secret)
		tr.ClientID, tr.AuthMethod, tr.BasicAuth = id, "client_secret_basic", true
	case f.Has("client_assertion"):
		tr.AuthMethod = "private_key_jwt"
		c, err := s.checkClientAssertion(f)
		if err != nil {
			return nil, tr, &tokenError{http.StatusUnauthorized, "invalid_client", "client assertion: " + err.Error()}
		}
		tr.ClientID = c.ID
		return c, tr, nil
	case f.Has("client_secret"):
		tr.ClientID, tr.AuthMethod, given = f.Get("client_id"), "client_secret_post", f.Get("client_secret")
	case f.Has("client_id"):
		tr.ClientID, tr.AuthMethod = f.Get("client_id"), "none"
	default:
		return nil, tr, nil
	}
	s.mu.Lock()
	c := s.clients[tr.ClientID]
	s.mu.Unlock()
	tr.ClientSecretOK = c != nil && c.Secret != "" && subtle.ConstantTimeCompare([]byte(given), []byte(c.Secret)) == 1
	switch {
	case c == nil:
		return nil, tr, &tokenError{http.StatusUnauthorized, "invalid_client", "client authentication failed"}
	case tr.AuthMethod != c.authMethod():
		return nil, tr, &tokenError{http.StatusUnauthorized, "invalid_client", "use " + c.authMethod()}
	case c.authMethod() != "none" && !tr.ClientSecretOK:
		return nil, tr, &tokenError{http.StatusUnauthorized, "invalid_client", "client authentication failed"}
	}
	return c, tr, nil
}

// redeemCode is the authorization_code grant (RFC 6749 §4.1.3, RFC 7636
// §4.6, RFC 8707 §2.2).
func (s *Server) redeemCode(form url.Values, client *Client) (*tokenResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	g := s.codes[form.Get("code")]
	if g == nil || time.Now().After(g.expires) {
		return nil, invalidGrant("unknown or expired code")
	}
	if g.used {
		// RFC 6749 §4.1.2: a code used twice revokes what it gave.
		for _, at := range g.issued {
			delete(s.access, at)
		}
		return nil, invalidGrant("code already used: its tokens are revoked")
	}
	g.used = true // single use, whatever happens next
	switch {
	case g.client.ID != client.ID:
		return nil, invalidGrant("code issued to another client")
	case g.redirectURI != form.Get("redirect_uri"):
		return nil, invalidGrant("redirect_uri differs from the authorization request")
	case !pkceMatches(form.Get("code_verifier"), g.challenge):
		return nil, invalidGrant("code_verifier does not match code_challenge (S256)")
	case s.RefuseResource && form.Has("resource"):
		return nil, invalidTarget("AADSTS9010010: the resource parameter is not supported with scopes")
	case !s.RefuseResource && form.Get("resource") != g.resource:
		return nil, invalidTarget("resource differs from the authorization request")
	}
	resp := s.issueLocked(client.ID, g.granted, g.granted, g.resource, g.acr, g.claims, secret(), s.refreshFor(g.granted))
	g.issued = append(g.issued, resp.AccessToken)
	return resp, nil
}

// redeemRefresh is the refresh_token grant (RFC 6749 §6) with rotation and
// reuse detection (RFC 9700 §4.14.2). A refused request leaves the refresh
// token usable; a granted one uses it up.
func (s *Server) redeemRefresh(form url.Values, client *Client) (*tokenResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rt := s.refresh[form.Get("refresh_token")]
	switch {
	case rt == nil:
		return nil, invalidGrant("unknown or revoked refresh token")
	case rt.clientID != client.ID:
		return nil, invalidGrant("refresh token issued to another client")
	case rt.used:
		s.stats.ReusedRefreshTokens++
		s.revokeLocked(rt.family)
		return nil, invalidGrant("refresh token reused: the grant is revoked")
	case s.RefuseResource && form.Has("resource"):
		return nil, invalidTarget("AADSTS9010010: the resource parameter is not supported with scopes")
	case s.RefreshNeedsResource && !form.Has("resource"):
		return nil, invalidTarget("the resource parameter is required")
	case form.Has("resource") && form.Get("resource") != rt.resource:
		return nil, invalidTarget("resource differs from the grant")
	}
	scopes := rt.scopes
	if form.Has("scope") {
		// RFC 6749 §6: the scope requested MUST NOT include any scope not
		// originally granted.
		scopes = strings.Fields(form.Get("scope"))
		for _, sc := range scopes {
			if !slices.Contains(rt.scopes, sc) {
				return nil, &tokenError{http.StatusBadRequest, "invalid_scope", "a refresh cannot add scope " + sc}
			}
		}
	}
	if s.NoRotation {
		return s.issueLocked(client.ID, scopes, rt.scopes, rt.resource, rt.acr, rt.claims, rt.family, false), nil
	}
	rt.used = true
	return s.issueLocked(client.ID, scopes, rt.scopes, rt.resource, rt.acr, rt.claims, rt.family, true), nil
}

// refreshFor reports whether a grant of scopes gets a refresh token: when
// it holds offline_access, or always with RefreshAlways.
func (s *Server) refreshFor(grant []string) bool {
	return s.RefreshAlways || slices.Contains(grant, "offline_access")
}

// issueLocked mints an access token for scopes of the grant, and with
// withRefresh a refresh token for the whole grant.
func (s *Server) issueLocked(clientID string, scopes, grant []string, resource, acr, claims, family string, withRefresh bool) *tokenResponse {
	if s.SingleGrant {
		family = "single"
		clear(s.access)
		for _, rt := range s.refresh {
			rt.used = true
		}
	}
	s.stats.AccessTokens++
	ttl := s.accessTTL()
	resp := &tokenResponse{
		AccessToken: s.mint("at"), TokenType: "Bearer", ExpiresIn: int(ttl / time.Second),
		Scope: strings.Join(scopes, " "),
	}
	s.access[resp.AccessToken] = &accessToken{clientID: clientID, scopes: scopes, resource: resource,
		acr: acr, claims: claims, expires: time.Now().Add(ttl), family: family, serial: s.stats.AccessTokens}
	if withRefresh {
		resp.RefreshToken = s.mint("rt")
		// The family keeps the scope of the original grant, so that a
		// refresh that asked for less can be followed by one asking for
		// all of it again (RFC 6749 §6).
		s.refresh[resp.RefreshToken] = &refreshToken{clientID: clientID, scopes: grant, resource: resource,
			acr: acr, claims: claims, family: family}
	}
	return resp
}

// revokeLocked revokes every token of a grant.
func (s *Server) revokeLocked(family string) {
	for k, at := range s.access {
		if at.family == family {
			delete(s.access, k)
		}
	}
	for k, rt := range s.refresh {
		if rt.family == family {
			delete(s.refresh, k)
		}
	}
}

// pkceMatches checks RFC 7636 §4.6: BASE64URL(SHA256(verifier)) ==
// challenge, for a verifier of 43 to 128 unreserved characters.
func pkceMatches(verifier, challenge string) bool {
	if len(verifier) < 43 || len(verifier) > 128 {
		return false
	}
	sum := sha256.Sum256([]byte(verifier))
	return subtle.ConstantTimeCompare([]byte(base64.RawURLEncoding.EncodeToString(sum[:])), []byte(challenge)) == 1
}

// Grant is a grant [Server.Issue] makes without an authorization request,
// as if an earlier login had.
type Grant struct {
	ClientID string
	Resource string
	Scopes   []string
	ACR      string
	// Refresh issues a refresh token with the access token.
	Refresh bool
}

// Issue mints tokens for g and returns them as a client would hold them,
// with the granted scope as the token's "scope" extra.
func (s *Server) Issue(g Grant) *oauth2.Token {
	s.mu.Lock()
	defer s.mu.Unlock()
	resp := s.issueLocked(g.ClientID, slices.Clone(g.Scopes), slices.Clone(g.Scopes), g.Resource, g.ACR, "", secret(), g.Refresh)
	tok := &oauth2.Token{AccessToken: resp.AccessToken, TokenType: resp.TokenType, RefreshToken: resp.RefreshToken,
		Expiry: time.Now().Add(time.Duration(resp.ExpiresIn) * time.Second)}
	return tok.WithExtra(map[string]any{"scope": resp.Scope})
}

// TokenInfo is what the server knows about an access token.
type TokenInfo struct {
	Subject  string
	ClientID string
	Resource string
	Scopes   []string
	// ACR is the authentication context class the grant was made with
	// (OpenID Connect Core 1.0 §2).
	ACR string
	// Claims is the claims parameter of the authorization request, if any
	// (OpenID Connect Core 1.0 §5.5).
	Claims  string
	Expires time.Time
	// Serial is 1 for the first access token the server issued, 2 for the
	// second, and so on.
	Serial int
}

// ErrInvalidToken is returned by [Server.Verify] for a token that is
// unknown, revoked, or issued for another resource.
var ErrInvalidToken = errors.New("oauthtest: invalid token")

// Verify returns what the server knows about token, an access token
// presented to resource. It does not check expiry, so that the resource
// server can tell an expired token from an unknown one; check Expires.
func (s *Server) Verify(token, resource string) (TokenInfo, error) {
	info, ok := s.lookup(token)
	if !ok || info.Resource != resource {
		// RFC 8707 §2: a token is only good at the resource it was
		// issued for (audience restriction).
		return TokenInfo{}, ErrInvalidToken
	}
	return info, nil
}

// Introspect returns what the server knows about an access token, and
// whether it is active: issued, not revoked, not expired (RFC 7662 §2.2).
func (s *Server) Introspect(token string) (TokenInfo, bool) {
	info, ok := s.lookup(token)
	if !ok || time.Now().After(info.Expires) {
		return TokenInfo{}, false
	}
	return info, true
}

func (s *Server) lookup(token string) (TokenInfo, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	at := s.access[token]
	if at == nil {
		return TokenInfo{}, false
	}
	return TokenInfo{Subject: Subject, ClientID: at.clientID, Resource: at.resource, Scopes: slices.Clone(at.scopes),
		ACR: at.acr, Claims: at.claims, Expires: at.expires, Serial: at.serial}, true
}

// Revoke revokes an access token, as when it ends early.
func (s *Server) Revoke(token string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.access, token)
}

// ExpireAccessTokens makes every access token issued so far expired, as if
// its lifetime had passed. Refresh tokens stay valid.
func (s *Server) ExpireAccessTokens() {
	s.mu.Lock()
	defer s.mu.Unlock()
	past := time.Now().Add(-time.Second)
	for _, at := range s.access {
		at.expires = past
	}
}
