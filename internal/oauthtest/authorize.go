package oauthtest

import (
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// codeTTL is how long an authorization code can be redeemed (RFC 6749
// §4.1.2 recommends at most ten minutes).
const codeTTL = time.Minute

// authRequest is a validated authorization request (RFC 6749 §4.1.1).
type authRequest struct {
	client      *Client
	query       url.Values
	redirectURI string
	state       string
	challenge   string // PKCE S256 code_challenge
	resource    string // the resource the tokens are bound to
	scopes      []string
}

// codeGrant is what an authorization code stands for.
type codeGrant struct {
	authRequest
	granted []string
	acr     string
	claims  string
	expires time.Time
	used    bool
	issued  []string // access tokens issued from it, revoked on reuse
}

// pushedRequest is a pushed authorization request (RFC 9126 §2).
type pushedRequest struct {
	query   url.Values
	expires time.Time
}

// parTTL is the lifetime of a request_uri (RFC 9126 §2.2: short).
const parTTL = time.Minute

// lookupClient returns the client named client_id in q, or nil. With CIMD
// an https client_id is taken as a client ID metadata document; a real
// server fetches it, this one trusts its redirect URI to be loopback.
func (s *Server) lookupClient(id string) *Client {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.clients[id]
	if c == nil && s.CIMD && strings.HasPrefix(id, "https://") {
		c = &Client{ID: id, AuthMethod: "none", RedirectURIs: []string{"http://127.0.0.1/callback"}}
		s.clients[id] = c
	}
	return c
}

// serveAuthorize is the authorization endpoint. Errors about the client or
// its redirect URI are shown here, never redirected (RFC 6749 §4.1.2.1);
// the others go back to the client with state.
func (s *Server) serveAuthorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if uri := q.Get("request_uri"); uri != "" {
		// RFC 9126 §4: the request is the one pushed, once.
		s.mu.Lock()
		p, ok := s.pushed[uri]
		delete(s.pushed, uri)
		s.mu.Unlock()
		if !ok || time.Now().After(p.expires) || p.query.Get("client_id") != q.Get("client_id") {
			http.Error(w, "unknown request_uri", http.StatusBadRequest)
			return
		}
		q = p.query
	}
	s.mu.Lock()
	s.log.authorize = append(s.log.authorize, q)
	s.mu.Unlock()
	client := s.lookupClient(q.Get("client_id"))
	if client == nil {
		http.Error(w, "unknown client_id", http.StatusBadRequest)
		return
	}
	redirectURI := q.Get("redirect_uri")
	if !redirectAllowed(client, redirectURI) {
		http.Error(w, "redirect_uri is not registered for this client", http.StatusBadRequest)
		return
	}
	req := authRequest{
		client: client, query: q, redirectURI: redirectURI, state: q.Get("state"),
		challenge: q.Get("code_challenge"), resource: q.Get("resource"),
		scopes: strings.Fields(q.Get("scope")),
	}
	if code, desc := s.checkAuthRequest(q); code != "" {
		s.redirectError(w, r, req, code, desc)
		return
	}
	if s.RefuseResource {
		s.mu.Lock()
		req.resource = s.ownResource()
		s.mu.Unlock()
	}
	if s.OpenID && !strings.Contains(" "+q.Get("prompt")+" ", " consent ") {
		// OpenID Connect Core 1.0 §11: offline_access needs consent.
		req.scopes = slices.DeleteFunc(slices.Clone(req.scopes), func(sc string) bool { return sc == "offline_access" })
	}
	s.observe(Event{Kind: "authorize", Scopes: req.scopes})
	s.mu.Lock()
	consent, person := s.consent, s.askPersonNext
	s.mu.Unlock()
	if person {
		s.askPerson(w, req)
		return
	}
	granted, errCode := consent(req.scopes, q)
	s.finishAuthorize(w, r, req, granted, errCode)
}

// checkAuthRequest returns the RFC 6749 §4.1.2.1 error code and description
// for an authorization request q the server refuses, or "".
func (s *Server) checkAuthRequest(q url.Values) (string, string) {
	switch {
	case q.Get("response_type") != "code":
		return "unsupported_response_type", "only response_type=code"
	case q.Get("state") == "":
		return "invalid_request", "state is required"
	case q.Get("code_challenge") == "" || q.Get("code_challenge_method") != "S256":
		return "invalid_request", "PKCE with code_challenge_method=S256 is required"
	case s.RefuseResource && q.Has("resource"):
		return "invalid_target", "AADSTS9010010: the resource parameter is not supported with scopes"
	case !s.RefuseResource && len(q["resource"]) != 1:
		return "invalid_target", "the resource parameter is required (RFC 8707)"
	}
	s.mu.Lock()
	known := s.RefuseResource || s.resourceKnown(q.Get("resource"))
	s.mu.Unlock()
	if !known {
		return "invalid_target", "unknown resource"
	}
	requested := strings.Fields(q.Get("scope"))
	if supported := s.scopes(); len(supported) > 0 {
		for _, sc := range requested {
			if !slices.Contains(supported, sc) {
				return "invalid_scope", "unknown scope " + sc
			}
		}
	}
	if s.OpenID && !slices.Contains(requested, "openid") {
		for _, p := range []string{"acr_values", "max_age", "claims"} {
			if q.Has(p) {
				return "invalid_request", "openid scope must be requested when using the " + p + " parameter"
			}
		}
	}
	return "", ""
}

// acr is the authentication context an authorization request q gets: the
// first acr_values the server knows, an essential acr of the claims
// parameter (OpenID Connect Core 1.0 §5.5.1.1), or the default.
func (s *Server) acr(q url.Values) string {
	if len(s.ACRValues) == 0 {
		// Any acr asked for is taken as met.
		if v := strings.Fields(q.Get("acr_values")); len(v) > 0 {
			return v[0]
		}
		return ""
	}
	acr := s.ACRValues[0]
	if v := strings.Fields(q.Get("acr_values")); len(v) > 0 && slices.Contains(s.ACRValues, v[0]) {
		acr = v[0]
	}
	for _, v := range s.ACRValues {
		if strings.Contains(q.Get("claims"), `"`+v+`"`) && v != s.ACRValues[0] {
			acr = v
		}
	}
	return acr
}

// finishAuthorize counts the consent and sends the browser back to the
// client with a code or the error the consent gave.
func (s *Server) finishAuthorize(w http.ResponseWriter, r *http.Request, req authRequest, granted []string, errCode string) {
	s.mu.Lock()
	s.stats.ConsentPrompts++
	if errCode != "" {
		s.stats.Declined++
	}
	s.mu.Unlock()
	if errCode != "" {
		s.observe(Event{Kind: "declined", Scopes: req.scopes})
		s.redirectError(w, r, req, errCode, "the resource owner declined")
		return
	}
	s.observe(Event{Kind: "consent", Scopes: granted})
	s.mu.Lock()
	code := s.mint("code")
	s.codes[code] = &codeGrant{authRequest: req, granted: granted, acr: s.acr(req.query),
		claims: req.query.Get("claims"), expires: time.Now().Add(codeTTL)}
	s.mu.Unlock()
	s.redirect(w, r, req, url.Values{"code": {code}})
}

func (s *Server) redirectError(w http.ResponseWriter, r *http.Request, req authRequest, code, desc string) {
	s.redirect(w, r, req, url.Values{"error": {code}, "error_description": {desc}})
}

// redirect sends the browser to the client's redirect URI with params,
// state and the RFC 9207 iss.
func (s *Server) redirect(w http.ResponseWriter, r *http.Request, req authRequest, params url.Values) {
	u, _ := url.Parse(req.redirectURI) // checked by redirectAllowed
	q := u.Query()
	for k, v := range params {
		q[k] = v
	}
	state := req.state
	if s.SendState != "" {
		state = s.SendState
	}
	if state != "" {
		q.Set("state", state)
	}
	switch {
	case s.SendIss != "":
		q.Set("iss", s.SendIss)
	case s.IssParameter:
		q.Set("iss", s.IssuerID())
	}
	u.RawQuery = q.Encode()
	http.Redirect(w, r, u.String(), http.StatusFound)
}

// redirectAllowed reports whether uri is one of c's registered redirect
// URIs, comparing a native client's loopback ones without their port (RFC
// 8252 §7.3).
func redirectAllowed(c *Client, uri string) bool {
	u, err := url.Parse(uri)
	if err != nil || u.Fragment != "" || !u.IsAbs() {
		return false
	}
	for _, reg := range c.RedirectURIs {
		if reg == uri {
			return true
		}
		if c.Web {
			continue
		}
		ru, err := url.Parse(reg)
		if err == nil && ru.Scheme == "http" && u.Scheme == "http" && isLoopback(ru.Hostname()) &&
			ru.Hostname() == u.Hostname() && ru.Path == u.Path && ru.RawQuery == u.RawQuery {
			return true
		}
	}
	return false
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// servePAR takes a pushed authorization request (RFC 9126 §2): what the
// authorization endpoint would refuse is refused here, at once.
func (s *Server) servePAR(w http.ResponseWriter, r *http.Request) {
	if !s.PAR {
		http.NotFound(w, r)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		oauthError(w, http.StatusBadRequest, "invalid_request", "")
		return
	}
	q := r.PostForm
	s.mu.Lock()
	s.log.pushes = append(s.log.pushes, q)
	s.mu.Unlock()
	c, _, _ := s.authenticate(r) // RFC 9126 §2.1: as at the token endpoint
	q.Del("client_secret")
	switch {
	case c == nil:
		oauthError(w, http.StatusUnauthorized, "invalid_client", "")
		return
	case !redirectAllowed(c, q.Get("redirect_uri")):
		// As oidc-provider answers.
		oauthError(w, http.StatusBadRequest, "invalid_request", "redirect_uri did not match any of the client's registered redirect_uris")
		return
	}
	if code, desc := s.checkAuthRequest(q); code != "" {
		oauthError(w, http.StatusBadRequest, code, desc)
		return
	}
	uri := "urn:ietf:params:oauth:request_uri:" + secret()
	s.mu.Lock()
	s.pushed[uri] = pushedRequest{query: q, expires: time.Now().Add(parTTL)}
	s.mu.Unlock()
	writeJSON(w, http.StatusCreated, map[string]any{"request_uri": uri, "expires_in": int(parTTL / time.Second)})
}
