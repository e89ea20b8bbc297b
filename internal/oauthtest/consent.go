package oauthtest

import (
	"html/template"
	"net/http"
	"net/url"
	"slices"
)

// Consent decides what the resource owner answers when asked to grant
// requested to a client by the authorization request q. It returns the
// scopes granted, or the error code of a refusal (RFC 6749 §4.1.2.1, e.g.
// access_denied). Granting fewer scopes than requested is allowed (RFC 6749
// §3.3); the token response then says which.
type Consent func(requested []string, q url.Values) (granted []string, errCode string)

// Approve grants every scope requested, at once.
func Approve() Consent {
	return func(requested []string, _ url.Values) ([]string, string) { return slices.Clone(requested), "" }
}

// Decline refuses every request.
func Decline() Consent {
	return func([]string, url.Values) ([]string, string) { return nil, "access_denied" }
}

// GrantOnly grants the requested scopes that are among allowed and silently
// leaves out the others, as a person unticking boxes on a consent page does.
func GrantOnly(allowed ...string) Consent {
	return func(requested []string, _ url.Values) ([]string, string) {
		var granted []string
		for _, sc := range requested {
			if slices.Contains(allowed, sc) {
				granted = append(granted, sc)
			}
		}
		return granted, ""
	}
}

// DeclineIfRequested refuses any request that asks for one of scopes, and
// approves the others: a person who will not grant those.
func DeclineIfRequested(scopes ...string) Consent {
	return func(requested []string, _ url.Values) ([]string, string) {
		for _, sc := range requested {
			if slices.Contains(scopes, sc) {
				return nil, "access_denied"
			}
		}
		return slices.Clone(requested), ""
	}
}

// SetConsent makes c answer the authorization requests from now on. A nil c
// makes the server ask a person instead: the authorization endpoint answers
// with an HTML page listing the scopes, with Approve and Decline buttons.
func (s *Server) SetConsent(c Consent) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.consent, s.askPersonNext = c, c == nil
}

// pending is an authorization request waiting on a person's decision.
type pending struct {
	req authRequest
}

var consentPage = template.Must(template.New("consent").Parse(`<!doctype html>
<html><head><meta charset="utf-8"><title>Consent</title></head>
<body style="font-family: sans-serif; max-width: 40em; margin: 3em auto">
<h1>Authorize {{.Client}}?</h1>
<p>It asks for access to <code>{{.Resource}}</code> with these scopes. Untick the ones you do not grant.</p>
<form method="post" action="/authorize/decision">
<input type="hidden" name="id" value="{{.ID}}">
{{range .Scopes}}<p><label><input type="checkbox" name="scope" value="{{.}}" checked> <code>{{.}}</code></label></p>
{{end}}<p><button name="decision" value="approve">Approve</button>
<button name="decision" value="decline">Decline</button></p>
</form></body></html>
`))

// askPerson shows the consent page for req.
func (s *Server) askPerson(w http.ResponseWriter, req authRequest) {
	id := secret()
	s.mu.Lock()
	s.interactive[id] = &pending{req: req}
	s.mu.Unlock()
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_ = consentPage.Execute(w, map[string]any{
		"ID": id, "Client": req.client.ID, "Resource": req.resource, "Scopes": req.scopes,
	})
}

// serveDecision receives the person's answer from the consent page.
func (s *Server) serveDecision(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		http.Error(w, "bad form", http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	p := s.interactive[r.PostForm.Get("id")]
	delete(s.interactive, r.PostForm.Get("id"))
	s.mu.Unlock()
	if p == nil {
		http.Error(w, "unknown or used consent request", http.StatusBadRequest)
		return
	}
	if r.PostForm.Get("decision") != "approve" {
		s.finishAuthorize(w, r, p.req, nil, "access_denied")
		return
	}
	var granted []string
	for _, sc := range r.PostForm["scope"] {
		if slices.Contains(p.req.scopes, sc) && !slices.Contains(granted, sc) {
			granted = append(granted, sc)
		}
	}
	s.finishAuthorize(w, r, p.req, granted, "")
}
