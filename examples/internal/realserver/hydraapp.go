package realserver

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// hydraSubject is the person's subject identifier at Hydra.
const hydraSubject = "person@example.test"

// maxAdminBody bounds what the app reads of a Hydra admin API answer.
const maxAdminBody = 1 << 20

// hydraApp is the deployment's login and consent app, which Hydra sends the
// browser to (urls.login, urls.consent). It plays the person: it accepts
// the login and answers consent through Hydra's admin API as the current
// Decision says.
type hydraApp struct {
	resource string       // the only audience it grants
	admin    string       // Hydra's admin API
	client   *http.Client // to the admin API

	mu       sync.Mutex
	decision Decision
}

func (a *hydraApp) decide(d Decision) {
	a.mu.Lock()
	defer a.mu.Unlock()
	d.Grant = slices.Clone(d.Grant)
	a.decision = d
}

func (a *hydraApp) current() Decision {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.decision
}

func (a *hydraApp) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /login", a.login)
	mux.HandleFunc("GET /consent", a.consent)
	mux.HandleFunc("GET /error", func(w http.ResponseWriter, r *http.Request) {
		// Hydra's error page, for errors it cannot send to the client.
		http.Error(w, "hydra error: "+r.URL.Query().Get("error")+": "+r.URL.Query().Get("error_description"), http.StatusBadRequest)
	})
	return mux
}

// hydraLoginRequest is the part of Hydra's login request the app reads.
type hydraLoginRequest struct {
	Skip        bool   `json:"skip"`
	Subject     string `json:"subject"`
	OIDCContext struct {
		ACRValues []string `json:"acr_values"`
	} `json:"oidc_context"`
}

// login accepts the login: the person is hydraSubject and satisfied the
// Decision's ACR (RFC 9470 §2), whatever acr_values asked; Hydra puts it
// into the ID token, the consent into the access token.
func (a *hydraApp) login(w http.ResponseWriter, r *http.Request) {
	challenge := r.URL.Query().Get("login_challenge")
	q := url.Values{"login_challenge": {challenge}}
	var lr hydraLoginRequest
	if err := a.call(r.Context(), http.MethodGet, "/admin/oauth2/auth/requests/login", q, nil, &lr); err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	d := a.current()
	accept := map[string]any{"subject": hydraSubject, "remember": false}
	if lr.Skip {
		// Hydra remembers the person (it does not here, as the app never
		// asks it to): the subject must be the one it knows.
		accept["subject"] = lr.Subject
	}
	if d.ACR != "" {
		accept["acr"] = d.ACR
	}
	// Hydra hands the login's context on to the consent request: the
	// time of the login goes with it into the access token.
	accept["context"] = hydraLoginContext{AuthTime: time.Now().Unix()}
	a.redirect(w, r, "/admin/oauth2/auth/requests/login/accept", q, accept)
}

// hydraLoginContext is what the login tells the consent, through Hydra.
type hydraLoginContext struct {
	AuthTime int64 `json:"auth_time"`
}

// hydraConsentRequest is the part of Hydra's consent request the app reads.
type hydraConsentRequest struct {
	RequestedScope    []string          `json:"requested_scope"`
	RequestedAudience []string          `json:"requested_access_token_audience"`
	RequestURL        string            `json:"request_url"`
	ACR               string            `json:"acr"`
	Context           hydraLoginContext `json:"context"`
	Client            struct {
		ID       string   `json:"client_id"`
		Audience []string `json:"audience"`
	} `json:"client"`
}

// consent answers the consent request: access_denied when the Decision
// declines, else the scopes asked (those of them the Decision grants, if it
// names some), the audience of the resource when asked for, and the ACR
// and time of the login in the access token, where a resource server
// introspecting it finds them.
func (a *hydraApp) consent(w http.ResponseWriter, r *http.Request) {
	q := url.Values{"consent_challenge": {r.URL.Query().Get("consent_challenge")}}
	var cr hydraConsentRequest
	if err := a.call(r.Context(), http.MethodGet, "/admin/oauth2/auth/requests/consent", q, nil, &cr); err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	d := a.current()
	if d.Decline {
		a.redirect(w, r, "/admin/oauth2/auth/requests/consent/reject", q, map[string]any{
			"error": "access_denied", "error_description": "The person declined.", "status_code": http.StatusForbidden,
		})
		return
	}
	grant := cr.RequestedScope
	if d.Grant != nil {
		grant = slices.DeleteFunc(slices.Clone(grant), func(s string) bool { return !slices.Contains(d.Grant, s) })
	}
	audience := a.audience(cr)
	if err := a.allowAudience(r.Context(), cr, audience); err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	session := map[string]any{"auth_time": cr.Context.AuthTime}
	if cr.ACR != "" {
		session["acr"] = cr.ACR
	}
	a.redirect(w, r, "/admin/oauth2/auth/requests/consent/accept", q, map[string]any{
		"grant_scope":                 grant,
		"grant_access_token_audience": audience,
		"remember":                    false,
		"session":                     map[string]any{"access_token": session},
	})
}

// audience is the audience to grant: the resource, when the request asked
// for it as RFC 8707 resource or as Hydra's audience; none else.
func (a *hydraApp) audience(cr hydraConsentRequest) []string {
	asked := slices.Clone(cr.RequestedAudience)
	if u, err := url.Parse(cr.RequestURL); err == nil {
		asked = append(asked, u.Query()["resource"]...)
	}
	if slices.Contains(asked, a.resource) {
		return []string{a.resource}
	}
	return []string{}
}

// allowAudience adds the audience granted to the client's allowed
// audiences, which Hydra checks at every refresh; a client registered
// dynamically has none unless it asked with Hydra's own "audience"
// metadata, and RFC 7591 clients do not. It is the deployment's policy
// here that a client the person consented to for the resource may hold
// its tokens.
func (a *hydraApp) allowAudience(ctx context.Context, cr hydraConsentRequest, audience []string) error {
	missing := slices.DeleteFunc(slices.Clone(audience), func(s string) bool { return slices.Contains(cr.Client.Audience, s) })
	if len(missing) == 0 {
		return nil
	}
	patch := []map[string]any{{"op": "replace", "path": "/audience", "value": append(slices.Clone(cr.Client.Audience), missing...)}}
	b, err := json.Marshal(patch)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPatch, a.admin+"/admin/clients/"+url.PathEscape(cr.Client.ID), bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	return a.do(req, "client audience", nil)
}

// redirect puts body to the admin API's accept or reject endpoint and sends
// the browser where Hydra says.
func (a *hydraApp) redirect(w http.ResponseWriter, r *http.Request, path string, q url.Values, body any) {
	var to struct {
		RedirectTo string `json:"redirect_to"`
	}
	if err := a.call(r.Context(), http.MethodPut, path, q, body, &to); err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	http.Redirect(w, r, to.RedirectTo, http.StatusFound)
}

// call sends a JSON request to Hydra's admin API and decodes the answer.
func (a *hydraApp) call(ctx context.Context, method, path string, q url.Values, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, a.admin+path+"?"+q.Encode(), rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	return a.do(req, path, out)
}

// do sends req to Hydra and decodes a 2xx JSON answer into out.
func (a *hydraApp) do(req *http.Request, what string, out any) error {
	resp, err := a.client.Do(req)
	if err != nil {
		return fmt.Errorf("hydra %s: %w", what, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxAdminBody))
	if err != nil {
		return fmt.Errorf("hydra %s: %w", what, err)
	}
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("hydra %s: %s: %.300s", what, resp.Status, b)
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("hydra %s: %w", what, err)
	}
	return nil
}

// hydraIntrospection is Hydra's introspection answer (RFC 7662 §2.2).
type hydraIntrospection struct {
	Active   bool     `json:"active"`
	Scope    string   `json:"scope"`
	ClientID string   `json:"client_id"`
	Subject  string   `json:"sub"`
	Exp      int64    `json:"exp"`
	Audience []string `json:"aud"`
	Issuer   string   `json:"iss"`
	TokenUse string   `json:"token_use"`
	Ext      struct {
		ACR      string `json:"acr"`
		AuthTime int64  `json:"auth_time"`
	} `json:"ext"`
}

// introspect asks Hydra's admin API about token (RFC 7662).
func (a *hydraApp) introspect(ctx context.Context, token string) (*hydraIntrospection, error) {
	form := url.Values{"token": {token}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, a.admin+"/admin/oauth2/introspect", strings.NewReader(form.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	var in hydraIntrospection
	if err := a.do(req, "introspection", &in); err != nil {
		return nil, err
	}
	return &in, nil
}

// Errors of Verify: the token is not one the resource server may accept.
var (
	errHydraInactive = errors.New("hydra: token not active")
	errHydraNotFor   = errors.New("hydra: token not for this resource")
)

// verify checks token as the resource server at a.resource does: active
// (not expired, not revoked), an access token and not a refresh token,
// issued by issuer, for the resource as its audience.
func (a *hydraApp) verify(ctx context.Context, issuer, token string) (*TokenInfo, error) {
	in, err := a.introspect(ctx, token)
	if err != nil {
		return nil, err
	}
	switch {
	case !in.Active:
		return nil, errHydraInactive
	case in.TokenUse != "access_token":
		return nil, fmt.Errorf("%w: a %s", errHydraNotFor, in.TokenUse)
	case in.Issuer != issuer:
		return nil, fmt.Errorf("%w: issuer %q", errHydraNotFor, in.Issuer)
	case !slices.Contains(in.Audience, a.resource):
		return nil, fmt.Errorf("%w: audience %q", errHydraNotFor, in.Audience)
	}
	info := &TokenInfo{
		Subject: in.Subject,
		Scopes:  strings.Fields(in.Scope),
		Expires: time.Unix(in.Exp, 0),
		ACR:     in.Ext.ACR,
	}
	if in.Ext.AuthTime != 0 {
		info.AuthTime = time.Unix(in.Ext.AuthTime, 0)
	}
	if !time.Now().Before(info.Expires) {
		return nil, errHydraInactive
	}
	return info, nil
}

// revoke revokes token at Hydra's revocation endpoint (RFC 7009 §2.1), as
// the public client it was issued to, whose identifier introspection tells.
// Hydra revokes the whole grant: the access and refresh tokens of the
// authorization.
func (a *hydraApp) revoke(ctx context.Context, issuer, token string) error {
	in, err := a.introspect(ctx, token)
	if err != nil {
		return err
	}
	if !in.Active {
		return errHydraInactive
	}
	form := url.Values{"token": {token}, "client_id": {in.ClientID}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, issuer+"/oauth2/revoke", strings.NewReader(form.Encode()))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return a.do(req, "revocation", nil)
}

// trustJWTIssuer registers a trust relationship for the JWT bearer grant
// through Hydra's admin API, valid for an hour.
func (a *hydraApp) trustJWTIssuer(ctx context.Context, issuer, subject string, key jose.JSONWebKey, scopes []string) error {
	body := map[string]any{
		"issuer": issuer, "subject": subject, "scope": scopes, "jwk": key,
		"expires_at": time.Now().Add(time.Hour).UTC().Format(time.RFC3339),
	}
	return a.call(ctx, http.MethodPost, "/admin/trust/grants/jwt-bearer/issuers", nil, body, nil)
}
