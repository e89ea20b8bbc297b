package authserver

import (
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
	redirectURI string
	state       string
	challenge   string // PKCE S256 code_challenge
	resource    string
	scopes      []string
}

// codeGrant is what an authorization code stands for.
type codeGrant struct {
	authRequest
	granted []string
	expires time.Time
}

// serveAuthorize is the authorization endpoint. Errors about the client or
// its redirect URI are shown here, never redirected (RFC 6749 §4.1.2.1);
// the others go back to the client with state.
func (s *Server) serveAuthorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	s.mu.Lock()
	client := s.clients[q.Get("client_id")]
	s.mu.Unlock()
	if client == nil {
		http.Error(w, "unknown client_id", http.StatusBadRequest)
		return
	}
	redirectURI := q.Get("redirect_uri")
	if !redirectAllowed(client.RedirectURIs, redirectURI) {
		http.Error(w, "redirect_uri is not registered for this client", http.StatusBadRequest)
		return
	}
	req := authRequest{
		client: client, redirectURI: redirectURI, state: q.Get("state"),
		challenge: q.Get("code_challenge"), resource: q.Get("resource"),
		scopes: strings.Fields(q.Get("scope")),
	}
	if code, desc := s.checkAuthRequest(q, req); code != "" {
		s.redirectError(w, r, req, code, desc)
		return
	}
	s.observe(Event{Kind: "authorize", Scopes: req.scopes})
	s.mu.Lock()
	consent := s.consent
	s.mu.Unlock()
	if consent == nil {
		s.askPerson(w, req)
		return
	}
	granted, declined := consent(req.scopes)
	s.finishAuthorize(w, r, req, granted, declined)
}

// checkAuthRequest returns the RFC 6749 §4.1.2.1 error code and description
// for a request the server refuses, or "".
func (s *Server) checkAuthRequest(q url.Values, req authRequest) (string, string) {
	switch {
	case q.Get("response_type") != "code":
		return "unsupported_response_type", "only response_type=code"
	case req.challenge == "" || q.Get("code_challenge_method") != "S256":
		return "invalid_request", "PKCE with code_challenge_method=S256 is required"
	case req.resource == "":
		return "invalid_target", "the resource parameter is required (RFC 8707)"
	}
	s.mu.Lock()
	known := s.resources[req.resource]
	s.mu.Unlock()
	if !known {
		return "invalid_target", "unknown resource"
	}
	if len(s.cfg.ScopesSupported) > 0 {
		for _, sc := range req.scopes {
			if !slices.Contains(s.cfg.ScopesSupported, sc) {
				return "invalid_scope", "unknown scope " + sc
			}
		}
	}
	return "", ""
}

// finishAuthorize counts the consent and sends the browser back to the
// client with a code or access_denied.
func (s *Server) finishAuthorize(w http.ResponseWriter, r *http.Request, req authRequest, granted []string, declined bool) {
	s.mu.Lock()
	s.stats.ConsentPrompts++
	if declined {
		s.stats.Declined++
	}
	s.mu.Unlock()
	if declined {
		s.observe(Event{Kind: "declined", Scopes: req.scopes})
		s.redirectError(w, r, req, "access_denied", "the resource owner declined")
		return
	}
	s.observe(Event{Kind: "consent", Scopes: granted})
	code := secret()
	s.mu.Lock()
	s.codes[code] = &codeGrant{authRequest: req, granted: granted, expires: time.Now().Add(codeTTL)}
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
	if req.state != "" {
		q.Set("state", req.state)
	}
	q.Set("iss", s.URL)
	u.RawQuery = q.Encode()
	http.Redirect(w, r, u.String(), http.StatusFound)
}

// redirectAllowed reports whether uri is one of registered, comparing
// loopback redirect URIs without their port (RFC 8252 §7.3).
func redirectAllowed(registered []string, uri string) bool {
	u, err := url.Parse(uri)
	if err != nil || u.Fragment != "" || !u.IsAbs() {
		return false
	}
	for _, reg := range registered {
		if reg == uri {
			return true
		}
		ru, err := url.Parse(reg)
		if err == nil && isLoopback(ru.Hostname()) && ru.Scheme == u.Scheme &&
			ru.Hostname() == u.Hostname() && ru.Path == u.Path && ru.RawQuery == u.RawQuery {
			return true
		}
	}
	return false
}

func isLoopback(host string) bool {
	return host == "127.0.0.1" || host == "::1" || host == "localhost"
}
