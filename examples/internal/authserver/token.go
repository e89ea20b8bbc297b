package authserver

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
)

// Subject is the resource owner of every grant: the server has one user.
const Subject = "demo-user"

// accessToken is an issued access token.
type accessToken struct {
	clientID string
	scopes   []string
	resource string
	expires  time.Time
	family   string // the grant it belongs to, for revocation
}

// refreshToken is an issued refresh token. A grant's refresh tokens form a
// family; only the newest one may be used.
type refreshToken struct {
	clientID string
	scopes   []string // the scope of the original grant: a refresh never widens it
	resource string
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

// tokenResponse is the RFC 6749 §5.1 success response.
type tokenResponse struct {
	AccessToken  string `json:"access_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int    `json:"expires_in"`
	RefreshToken string `json:"refresh_token,omitempty"`
	Scope        string `json:"scope"`
}

// serveToken is the token endpoint (RFC 6749 §3.2).
func (s *Server) serveToken(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_request"})
		return
	}
	grantType := r.PostForm.Get("grant_type")
	s.mu.Lock()
	s.stats.TokenRequests[grantType]++
	s.mu.Unlock()
	resp, err := s.grant(r, grantType)
	if err != nil {
		var te *tokenError
		if !errors.As(err, &te) {
			te = &tokenError{http.StatusInternalServerError, "server_error", err.Error()}
		}
		s.observe(Event{Kind: "refused", GrantType: grantType, Detail: te.Error()})
		if te.status == http.StatusUnauthorized {
			w.Header().Set("WWW-Authenticate", `Basic realm="token"`)
		}
		writeJSON(w, te.status, map[string]string{"error": te.code, "error_description": te.desc})
		return
	}
	s.observe(Event{Kind: "token", GrantType: grantType, Scopes: strings.Fields(resp.Scope),
		Detail: map[bool]string{true: "with a refresh token", false: "without a refresh token"}[resp.RefreshToken != ""]})
	writeJSON(w, http.StatusOK, resp)
}

func (s *Server) grant(r *http.Request, grantType string) (*tokenResponse, error) {
	client, err := s.authenticate(r)
	if err != nil {
		return nil, err
	}
	switch grantType {
	case "authorization_code":
		return s.redeemCode(r.PostForm, client)
	case "refresh_token":
		return s.redeemRefresh(r.PostForm, client)
	case "client_credentials":
		return s.clientCredentials(r.PostForm, client)
	case grantJWTBearer:
		return s.redeemIDJAG(r.PostForm, client)
	}
	return nil, &tokenError{http.StatusBadRequest, "unsupported_grant_type", "grant_type " + grantType}
}

// authenticate checks the client's credentials by the method it registered
// (RFC 6749 §2.3.1). A public client only names itself.
func (s *Server) authenticate(r *http.Request) (*Client, error) {
	id, secretGiven, basic := r.BasicAuth()
	if basic {
		// RFC 6749 §2.3.1: both are form-urlencoded inside Basic.
		id, _ = url.QueryUnescape(id)
		secretGiven, _ = url.QueryUnescape(secretGiven)
	} else {
		id, secretGiven = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	}
	s.mu.Lock()
	c := s.clients[id]
	s.mu.Unlock()
	unauthorized := &tokenError{http.StatusUnauthorized, "invalid_client", "client authentication failed"}
	if c == nil {
		return nil, unauthorized
	}
	switch method := c.authMethod(); {
	case method == "none" && secretGiven == "":
		return c, nil
	case method == "client_secret_basic" && !basic, method == "client_secret_post" && basic, method == "none":
		return nil, &tokenError{http.StatusUnauthorized, "invalid_client", "use " + method}
	}
	if subtle.ConstantTimeCompare([]byte(secretGiven), []byte(c.Secret)) != 1 {
		return nil, unauthorized
	}
	return c, nil
}

// redeemCode is the authorization_code grant (RFC 6749 §4.1.3, RFC 7636
// §4.6, RFC 8707 §2.2).
func (s *Server) redeemCode(form url.Values, client *Client) (*tokenResponse, error) {
	s.mu.Lock()
	g := s.codes[form.Get("code")]
	delete(s.codes, form.Get("code")) // single use, whatever happens next
	s.mu.Unlock()
	switch {
	case g == nil || time.Now().After(g.expires):
		return nil, invalidGrant("unknown, used or expired code")
	case g.client.ID != client.ID:
		return nil, invalidGrant("code issued to another client")
	case g.redirectURI != form.Get("redirect_uri"):
		return nil, invalidGrant("redirect_uri differs from the authorization request")
	case !pkceMatches(form.Get("code_verifier"), g.challenge):
		return nil, invalidGrant("code_verifier does not match code_challenge (S256)")
	case form.Get("resource") != g.resource:
		return nil, &tokenError{http.StatusBadRequest, "invalid_target", "resource differs from the authorization request"}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.issueLocked(client.ID, g.granted, g.resource, secret()), nil
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
	case form.Has("resource") && form.Get("resource") != rt.resource:
		return nil, &tokenError{http.StatusBadRequest, "invalid_target", "resource differs from the grant"}
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
	rt.used = true
	return s.issueLocked(client.ID, scopes, rt.resource, rt.family), nil
}

// issueLocked mints an access token, and a refresh token when
// offline_access is among scopes.
func (s *Server) issueLocked(clientID string, scopes []string, resource, family string) *tokenResponse {
	ttl := s.accessTTL()
	resp := &tokenResponse{
		AccessToken: secret(), TokenType: "Bearer", ExpiresIn: int(ttl / time.Second),
		Scope: strings.Join(scopes, " "),
	}
	s.access[resp.AccessToken] = &accessToken{clientID: clientID, scopes: scopes, resource: resource,
		expires: time.Now().Add(ttl), family: family}
	if slices.Contains(scopes, "offline_access") {
		resp.RefreshToken = secret()
		// The family keeps the scope of the original grant, so that a
		// refresh that asked for less can be followed by one asking for
		// all of it again (RFC 6749 §6).
		original := scopes
		for _, rt := range s.refresh {
			if rt.family == family {
				original = rt.scopes
				break
			}
		}
		s.refresh[resp.RefreshToken] = &refreshToken{clientID: clientID, scopes: original, resource: resource, family: family}
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

// TokenInfo is what [Server.Verify] knows about an access token.
type TokenInfo struct {
	Subject string
	Scopes  []string
	Expires time.Time
}

// ErrInvalidToken is returned by [Server.Verify] for a token that is
// unknown, revoked, or issued for another resource.
var ErrInvalidToken = errors.New("authserver: invalid token")

// Verify returns what the server knows about token, an access token
// presented to resource. It does not check expiry, so that the resource
// server can tell an expired token from an unknown one; check Expires.
func (s *Server) Verify(token, resource string) (TokenInfo, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	at := s.access[token]
	if at == nil || at.resource != resource {
		// RFC 8707 §2: a token is only good at the resource it was
		// issued for (audience restriction).
		return TokenInfo{}, ErrInvalidToken
	}
	return TokenInfo{Subject: Subject, Scopes: slices.Clone(at.scopes), Expires: at.expires}, nil
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
