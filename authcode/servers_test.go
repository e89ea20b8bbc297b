package authcode_test

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stepup-go/stepup/discovery"
)

// authServer is an OAuth 2.0 authorization server for the tests, on
// loopback, that behaves as a strict real one does: it serves RFC 8414
// metadata, registers clients (RFC 7591), authenticates them at the token
// endpoint by their registered method, requires PKCE S256 (RFC 7636), state
// and the RFC 8707 resource it serves, issues a refresh token only for
// offline_access, rotates refresh tokens and revokes the grant when one
// is used twice (OAuth 2.1 §4.3.1), refuses a refresh that would widen the
// scope (RFC 6749 §6), and answers authorization requests at once through
// a consent function standing for the person.
//
// With openID it behaves as panva's oidc-provider does: metadata only at
// the OpenID Connect Discovery location, openid among its scopes,
// acr_values, max_age and claims refused without the openid scope,
// offline_access dropped without prompt=consent (OpenID Connect Core 1.0
// §11). Whatever the mode, a client registered without application_type
// native is held to its exact redirect URI, as a web client (OpenID Connect
// Dynamic Client Registration 1.0 §2).
type authServer struct {
	srv    *httptest.Server
	issuer string
	base   string // the URL its endpoints are under: srv.URL, unless it shares another server's origin

	// Configuration; set before the first request.
	resource        string   // the resource it issues tokens for; "" = any
	authMethods     []string // token_endpoint_auth_methods_supported; nil = none and client_secret_basic
	scopesSupported []string // nil = read, write, admin, offline_access
	noPKCE          bool     // leave code_challenge_methods_supported out of the metadata
	noRegistration  bool     // no registration endpoint
	cimd            bool     // client_id_metadata_document_supported
	issParam        bool     // authorization_response_iss_parameter_supported, and iss sent
	sendIss         string   // iss to send instead of the issuer (a mix-up)
	sendState       string   // state to send instead of the request's
	accessTTL       time.Duration
	openID          bool   // an OpenID Provider (see above)
	par             bool   // a pushed authorization request endpoint (RFC 9126)
	endpointQuery   string // a query of the authorization endpoint's own, as a tenant's policy
	parURL          string // the pushed authorization request endpoint the metadata names; "" = base + /par
	refuseResource  bool   // refuse the RFC 8707 resource and bind tokens to its own, as Entra ID v2.0 does
	// consent stands for the person: the scopes granted, or an error
	// code for the redirect. nil grants what was asked.
	consent func(q url.Values) (granted []string, errCode string)

	mu        sync.Mutex
	clients   map[string]*asClient
	codes     map[string]*asCode
	access    map[string]*asToken
	refresh   map[string]*asRefresh
	authorize []url.Values   // every authorization request's query
	tokens    []tokenRequest // every token request
	registers []map[string]any
	metadata  int                   // metadata requests
	pushed    map[string]url.Values // request_uri → the pushed request (RFC 9126)
	pushes    []url.Values          // every pushed request's form
}

type asClient struct {
	id, secret, method string
	redirectURIs       []string
	native             bool // application_type native: any loopback port (RFC 8252 §7.3)
}

type asCode struct {
	client, redirectURI, challenge, resource, acr string
	scopes                                        []string
	used                                          bool
	issued                                        []string // access tokens issued from it, revoked on reuse
}

type asToken struct {
	client, resource, acr string
	scopes                []string
	expiry                time.Time
}

type asRefresh struct {
	client, resource, acr string
	scopes                []string // the original grant
	used                  bool
	family                *[]string // every token of the grant, revoked on reuse
}

type tokenRequest struct {
	form           url.Values
	clientID       string
	authMethod     string // as the client authenticated
	basicAuth      bool
	clientSecretOK bool
}

func newAuthServer(t *testing.T) *authServer {
	as := startAuthServer()
	t.Cleanup(as.srv.Close)
	return as
}

// startAuthServer starts an authServer; Close it with as.srv.Close.
func startAuthServer() *authServer {
	as := &authServer{
		clients: map[string]*asClient{},
		codes:   map[string]*asCode{},
		access:  map[string]*asToken{},
		refresh: map[string]*asRefresh{},
		pushed:  map[string]url.Values{},
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/oauth-authorization-server", func(w http.ResponseWriter, r *http.Request) {
		if as.openID {
			http.NotFound(w, r)
			return
		}
		as.serveMetadata(w, r)
	})
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		if !as.openID {
			http.NotFound(w, r)
			return
		}
		as.serveMetadata(w, r)
	})
	mux.HandleFunc("POST /par", as.servePAR)
	mux.HandleFunc("GET /authorize", as.serveAuthorize)
	mux.HandleFunc("POST /token", as.serveToken)
	mux.HandleFunc("POST /register", as.serveRegister)
	as.srv = httptest.NewServer(mux)
	as.issuer = as.srv.URL
	as.base = as.srv.URL
	return as
}

func (as *authServer) methods() []string {
	if as.authMethods == nil {
		return []string{"none", "client_secret_basic"}
	}
	return as.authMethods
}

func (as *authServer) scopes() []string {
	scopes := as.scopesSupported
	if scopes == nil {
		scopes = []string{"read", "write", "admin", "offline_access"}
	}
	if as.openID && !slices.Contains(scopes, "openid") {
		scopes = append(slices.Clip(scopes), "openid")
	}
	return scopes
}

func (as *authServer) serveMetadata(w http.ResponseWriter, r *http.Request) {
	as.mu.Lock()
	as.metadata++
	as.mu.Unlock()
	m := map[string]any{
		"issuer":                                as.issuer,
		"authorization_endpoint":                as.base + "/authorize" + as.endpointQuery,
		"token_endpoint":                        as.base + "/token",
		"response_types_supported":              []string{"code"},
		"grant_types_supported":                 []string{"authorization_code", "refresh_token"},
		"token_endpoint_auth_methods_supported": as.methods(),
		"scopes_supported":                      as.scopes(),
		"acr_values_supported":                  []string{"urn:low", "urn:high"},
		"claims_parameter_supported":            true,
	}
	if !as.noPKCE {
		m["code_challenge_methods_supported"] = []string{"S256"}
	}
	if !as.noRegistration {
		m["registration_endpoint"] = as.base + "/register"
	}
	if as.cimd {
		m["client_id_metadata_document_supported"] = true
	}
	if as.issParam {
		m["authorization_response_iss_parameter_supported"] = true
	}
	if as.par {
		m["pushed_authorization_request_endpoint"] = as.base + "/par"
		if as.parURL != "" {
			m["pushed_authorization_request_endpoint"] = as.parURL
		}
	}
	writeJSON(w, http.StatusOK, m)
}

// preRegister adds a client, as an administrator would.
func (as *authServer) preRegister(id, secret, method string, redirectURIs ...string) {
	as.mu.Lock()
	defer as.mu.Unlock()
	as.clients[id] = &asClient{id: id, secret: secret, method: method, redirectURIs: redirectURIs, native: true}
}

// preRegisterWeb adds a web client, held to its exact redirect URIs, as an
// administrator would.
func (as *authServer) preRegisterWeb(id string, redirectURIs ...string) {
	as.mu.Lock()
	defer as.mu.Unlock()
	as.clients[id] = &asClient{id: id, method: "none", redirectURIs: redirectURIs}
}

func (as *authServer) serveRegister(w http.ResponseWriter, r *http.Request) {
	if as.noRegistration {
		http.NotFound(w, r)
		return
	}
	var m map[string]any
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10)).Decode(&m); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_client_metadata"})
		return
	}
	method, _ := m["token_endpoint_auth_method"].(string)
	if method == "" {
		method = "client_secret_basic" // RFC 7591 §2
	}
	if !slices.Contains(as.methods(), method) {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_client_metadata", "error_description": "unsupported token_endpoint_auth_method"})
		return
	}
	var uris []string
	raw, _ := m["redirect_uris"].([]any)
	for _, u := range raw {
		s, _ := u.(string)
		if pu, err := url.Parse(s); err != nil || !pu.IsAbs() || pu.Fragment != "" {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_redirect_uri"})
			return
		}
		uris = append(uris, s)
	}
	if len(uris) == 0 {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_redirect_uri"})
		return
	}
	c := &asClient{id: "client-" + random(), method: method, redirectURIs: uris, native: m["application_type"] == "native"}
	if method != "none" {
		c.secret = "secret-" + random()
	}
	as.mu.Lock()
	as.clients[c.id] = c
	as.registers = append(as.registers, m)
	as.mu.Unlock()
	resp := map[string]any{"client_id": c.id, "redirect_uris": uris, "token_endpoint_auth_method": method, "client_id_issued_at": time.Now().Unix()}
	if c.secret != "" {
		resp["client_secret"], resp["client_secret_expires_at"] = c.secret, 0
	}
	writeJSON(w, http.StatusCreated, resp)
}

// redirectAllowed: the registered URI, or for a native client's loopback
// one any port (RFC 8252 §7.3).
func redirectAllowed(c *asClient, uri string) bool {
	for _, reg := range c.redirectURIs {
		if reg == uri {
			return true
		}
		if !c.native {
			continue
		}
		a, err1 := url.Parse(reg)
		b, err2 := url.Parse(uri)
		if err1 == nil && err2 == nil && a.Scheme == "http" && b.Scheme == "http" && a.Hostname() == b.Hostname() &&
			discovery.IsLoopbackHost(a.Hostname()) && a.Path == b.Path && a.RawQuery == b.RawQuery {
			return true
		}
	}
	return false
}

// servePAR takes a pushed authorization request (RFC 9126 §2): what the
// authorization endpoint would refuse is refused here, at once.
func (as *authServer) servePAR(w http.ResponseWriter, r *http.Request) {
	if !as.par {
		http.NotFound(w, r)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		tokenError(w, http.StatusBadRequest, "invalid_request")
		return
	}
	q := r.PostForm
	as.mu.Lock()
	as.pushes = append(as.pushes, q)
	c, _ := as.authenticate(r, q) // RFC 9126 §2.1: as at the token endpoint
	as.mu.Unlock()
	q.Del("client_secret")
	switch {
	case c == nil:
		tokenError(w, http.StatusUnauthorized, "invalid_client")
		return
	case !redirectAllowed(c, q.Get("redirect_uri")):
		// As oidc-provider answers.
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_request", "error_description": "redirect_uri did not match any of the client's registered redirect_uris"})
		return
	}
	if code, desc := as.refuse(q); code != "" {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": code, "error_description": desc})
		return
	}
	uri := "urn:ietf:params:oauth:request_uri:" + random()
	as.mu.Lock()
	as.pushed[uri] = q
	as.mu.Unlock()
	writeJSON(w, http.StatusCreated, map[string]any{"request_uri": uri, "expires_in": 60})
}

// refuse returns the error an authorization request q gets, if any.
func (as *authServer) refuse(q url.Values) (code, desc string) {
	switch {
	case q.Get("response_type") != "code":
		return "unsupported_response_type", "code only"
	case q.Get("state") == "":
		return "invalid_request", "state is required"
	case q.Get("code_challenge") == "" || q.Get("code_challenge_method") != "S256":
		return "invalid_request", "PKCE S256 is required"
	case as.refuseResource && q.Has("resource"):
		return "invalid_target", "AADSTS9010010: the resource parameter is not supported with scopes"
	case !as.refuseResource && (len(q["resource"]) != 1 || as.resource != "" && q.Get("resource") != as.resource):
		return "invalid_target", "unknown resource"
	}
	requested := strings.Fields(q.Get("scope"))
	for _, s := range requested {
		if !slices.Contains(as.scopes(), s) {
			return "invalid_scope", "unknown scope"
		}
	}
	if as.openID && !slices.Contains(requested, "openid") {
		for _, p := range []string{"acr_values", "max_age", "claims"} {
			if q.Has(p) {
				return "invalid_request", "openid scope must be requested when using the " + p + " parameter"
			}
		}
	}
	return "", ""
}

func (as *authServer) serveAuthorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	as.mu.Lock()
	if uri := q.Get("request_uri"); uri != "" {
		// RFC 9126 §4: the request is the one pushed, once.
		pushed := as.pushed[uri]
		delete(as.pushed, uri)
		if pushed == nil || pushed.Get("client_id") != q.Get("client_id") {
			as.mu.Unlock()
			http.Error(w, "unknown request_uri", http.StatusBadRequest)
			return
		}
		q = pushed
	}
	as.authorize = append(as.authorize, q)
	c := as.clients[q.Get("client_id")]
	if c == nil && as.cimd && strings.HasPrefix(q.Get("client_id"), "https://") {
		// A client ID metadata document; a real server fetches it, this
		// one trusts its redirect URIs to be loopback.
		c = &asClient{id: q.Get("client_id"), method: "none", redirectURIs: []string{"http://127.0.0.1/callback"}}
		as.clients[c.id] = c
	}
	as.mu.Unlock()
	// RFC 6749 §4.1.2.1: without a valid client and redirect URI, the
	// person is told, never redirected.
	if c == nil {
		http.Error(w, "unknown client", http.StatusBadRequest)
		return
	}
	redirectURI := q.Get("redirect_uri")
	if !redirectAllowed(c, redirectURI) {
		http.Error(w, "redirect_uri not registered", http.StatusBadRequest)
		return
	}
	state := q.Get("state")
	if as.sendState != "" {
		state = as.sendState
	}
	fail := func(code, desc string) {
		as.redirect(w, r, redirectURI, url.Values{"error": {code}, "error_description": {desc}, "state": {state}})
	}
	if code, desc := as.refuse(q); code != "" {
		fail(code, desc)
		return
	}
	requested := strings.Fields(q.Get("scope"))
	if as.openID && !strings.Contains(" "+q.Get("prompt")+" ", " consent ") {
		// OpenID Connect Core 1.0 §11: offline_access needs consent.
		requested = slices.DeleteFunc(slices.Clone(requested), func(s string) bool { return s == "offline_access" })
	}
	granted := requested
	if as.consent != nil {
		var errCode string
		if granted, errCode = as.consent(q); errCode != "" {
			fail(errCode, "the person said no")
			return
		}
	}
	acr := "urn:low"
	if v := strings.Fields(q.Get("acr_values")); len(v) > 0 && slices.Contains([]string{"urn:low", "urn:high"}, v[0]) {
		acr = v[0]
	}
	if strings.Contains(q.Get("claims"), `"urn:high"`) { // OpenID Connect Core 1.0 §5.5.1.1: an essential acr
		acr = "urn:high"
	}
	code := "code-" + random()
	resource := q.Get("resource")
	if as.refuseResource {
		resource = as.resource
	}
	as.mu.Lock()
	as.codes[code] = &asCode{client: c.id, redirectURI: redirectURI, challenge: q.Get("code_challenge"),
		resource: resource, acr: acr, scopes: granted}
	as.mu.Unlock()
	as.redirect(w, r, redirectURI, url.Values{"code": {code}, "state": {state}})
}

func (as *authServer) redirect(w http.ResponseWriter, r *http.Request, redirectURI string, params url.Values) {
	if as.sendIss != "" {
		params.Set("iss", as.sendIss)
	} else if as.issParam {
		params.Set("iss", as.issuer)
	}
	u, _ := url.Parse(redirectURI)
	q := u.Query()
	for k, v := range params {
		q[k] = v
	}
	u.RawQuery = q.Encode()
	http.Redirect(w, r, u.String(), http.StatusFound)
}

func (as *authServer) serveToken(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		tokenError(w, http.StatusBadRequest, "invalid_request")
		return
	}
	f := r.PostForm
	as.mu.Lock()
	defer as.mu.Unlock()
	c, tr := as.authenticate(r, f)
	as.tokens = append(as.tokens, tr)
	if c == nil {
		tokenError(w, http.StatusUnauthorized, "invalid_client")
		return
	}
	switch f.Get("grant_type") {
	case "authorization_code":
		as.redeemCode(w, c, f)
	case "refresh_token":
		as.redeemRefresh(w, c, f)
	default:
		tokenError(w, http.StatusBadRequest, "unsupported_grant_type")
	}
}

// authenticate authenticates the client of request r with form f
// (RFC 6749 §2.3.1), by the method the client registered: the client, or
// nil. Call with mu held.
func (as *authServer) authenticate(r *http.Request, f url.Values) (*asClient, tokenRequest) {
	tr := tokenRequest{form: f}
	var c *asClient
	if id, secret, ok := r.BasicAuth(); ok {
		id, _ = url.QueryUnescape(id)
		secret, _ = url.QueryUnescape(secret)
		tr.clientID, tr.authMethod, tr.basicAuth = id, "client_secret_basic", true
		c = as.clients[id]
		tr.clientSecretOK = c != nil && c.secret != "" && subtle.ConstantTimeCompare([]byte(secret), []byte(c.secret)) == 1
	} else {
		tr.clientID = f.Get("client_id")
		tr.authMethod = "none"
		c = as.clients[tr.clientID]
		if f.Has("client_secret") {
			tr.authMethod = "client_secret_post"
			tr.clientSecretOK = c != nil && c.secret != "" && subtle.ConstantTimeCompare([]byte(f.Get("client_secret")), []byte(c.secret)) == 1
		}
	}
	if c == nil || tr.authMethod != c.method || c.method != "none" && !tr.clientSecretOK {
		return nil, tr
	}
	return c, tr
}

func (as *authServer) redeemCode(w http.ResponseWriter, c *asClient, f url.Values) {
	code := as.codes[f.Get("code")]
	switch {
	case code == nil || code.client != c.id:
		tokenError(w, http.StatusBadRequest, "invalid_grant")
		return
	case code.used:
		// RFC 6749 §4.1.2: a code used twice revokes what it gave.
		for _, at := range code.issued {
			delete(as.access, at)
		}
		tokenError(w, http.StatusBadRequest, "invalid_grant")
		return
	case f.Get("redirect_uri") != code.redirectURI:
		tokenError(w, http.StatusBadRequest, "invalid_grant")
		return
	case s256(f.Get("code_verifier")) != code.challenge:
		tokenError(w, http.StatusBadRequest, "invalid_grant") // RFC 7636 §4.6
		return
	case as.refuseResource && f.Has("resource"), !as.refuseResource && f.Get("resource") != code.resource:
		tokenError(w, http.StatusBadRequest, "invalid_target") // RFC 8707 §2.2
		return
	}
	code.used = true
	family := &[]string{}
	resp := as.issue(c.id, code.resource, code.acr, code.scopes, code.scopes, family)
	code.issued = append(code.issued, resp["access_token"].(string))
	writeJSON(w, http.StatusOK, resp)
}

func (as *authServer) redeemRefresh(w http.ResponseWriter, c *asClient, f url.Values) {
	rt := as.refresh[f.Get("refresh_token")]
	switch {
	case rt == nil || rt.client != c.id:
		tokenError(w, http.StatusBadRequest, "invalid_grant")
		return
	case rt.used:
		// A rotated refresh token used again: theft, the grant is revoked.
		for _, tok := range *rt.family {
			delete(as.access, tok)
			delete(as.refresh, tok)
		}
		tokenError(w, http.StatusBadRequest, "invalid_grant")
		return
	case as.refuseResource && f.Has("resource"), f.Has("resource") && f.Get("resource") != rt.resource:
		tokenError(w, http.StatusBadRequest, "invalid_target")
		return
	}
	scopes := rt.scopes
	if f.Has("scope") {
		scopes = strings.Fields(f.Get("scope"))
		for _, s := range scopes {
			if !slices.Contains(rt.scopes, s) {
				// RFC 6749 §6: a refresh cannot widen the grant.
				tokenError(w, http.StatusBadRequest, "invalid_scope")
				return
			}
		}
	}
	rt.used = true
	writeJSON(w, http.StatusOK, as.issue(c.id, rt.resource, rt.acr, scopes, rt.scopes, rt.family))
}

// issue mints an access token for scopes, and a refresh token for the
// original grant when it holds offline_access. Call with mu held.
func (as *authServer) issue(client, resource, acr string, scopes, grant []string, family *[]string) map[string]any {
	ttl := as.accessTTL
	if ttl == 0 {
		ttl = time.Hour
	}
	at := "at-" + random()
	as.access[at] = &asToken{client: client, resource: resource, acr: acr, scopes: scopes, expiry: time.Now().Add(ttl)}
	*family = append(*family, at)
	resp := map[string]any{"access_token": at, "token_type": "Bearer", "expires_in": int(ttl.Seconds()), "scope": strings.Join(scopes, " ")}
	if slices.Contains(grant, "offline_access") {
		rt := "rt-" + random()
		as.refresh[rt] = &asRefresh{client: client, resource: resource, acr: acr, scopes: grant, family: family}
		*family = append(*family, rt)
		resp["refresh_token"] = rt
	}
	return resp
}

// introspect returns what the server knows of an access token.
func (as *authServer) introspect(at string) (asToken, bool) {
	as.mu.Lock()
	defer as.mu.Unlock()
	t, ok := as.access[at]
	if !ok || time.Now().After(t.expiry) {
		return asToken{}, false
	}
	return *t, true
}

// expireAll ends every access token's life, as time would.
func (as *authServer) expireAll() {
	as.mu.Lock()
	defer as.mu.Unlock()
	for _, t := range as.access {
		t.expiry = time.Time{}
	}
}

func (as *authServer) authorizeRequests() []url.Values {
	as.mu.Lock()
	defer as.mu.Unlock()
	return slices.Clone(as.authorize)
}

func (as *authServer) tokenRequests() []tokenRequest {
	as.mu.Lock()
	defer as.mu.Unlock()
	return slices.Clone(as.tokens)
}

func (as *authServer) grantTypes() []string {
	var out []string
	for _, tr := range as.tokenRequests() {
		out = append(out, tr.form.Get("grant_type"))
	}
	return out
}

func (as *authServer) registrations() int {
	as.mu.Lock()
	defer as.mu.Unlock()
	return len(as.registers)
}

func (as *authServer) registrationRequests() []map[string]any {
	as.mu.Lock()
	defer as.mu.Unlock()
	return slices.Clone(as.registers)
}

func (as *authServer) pushedRequests() []url.Values {
	as.mu.Lock()
	defer as.mu.Unlock()
	return slices.Clone(as.pushes)
}

// resourceServer is a protected resource for the tests, in the manner of
// an MCP server: its metadata at the path-inserted well-known URL, 401 with
// resource_metadata for a request without a valid token, 403
// insufficient_scope with the scopes an operation needs (RFC 6750 §3.1),
// 401 insufficient_user_authentication when an operation needs a stronger
// authentication (RFC 9470).
type resourceServer struct {
	srv      *httptest.Server
	as       *authServer
	resource string // srv.URL + "/mcp"

	// Configuration; set before the first request.
	scopesSupported []string          // in the metadata; nil = none
	initialScope    string            // scope of the 401 to a request without token
	needs           map[string]string // path → scopes it needs
	needsACR        map[string]string // path → acr_values it needs
	needsClaims     map[string]string // path → claims it answers insufficient_claims with (JSON)
	noMetadata      bool              // no protected resource metadata, no resource_metadata in challenges: an MCP 2025-03-26 server

	mu    sync.Mutex
	moved *authServer // the authorization server it moved to, if it did
}

// moveTo makes as2 the resource's authorization server: its metadata names
// as2 alone, and only as2's tokens are accepted.
func (rs *resourceServer) moveTo(as2 *authServer) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	rs.moved = as2
	as2.resource = rs.resource
}

func (rs *resourceServer) authServer() *authServer {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if rs.moved != nil {
		return rs.moved
	}
	return rs.as
}

func newResourceServer(t *testing.T, as *authServer) *resourceServer {
	rs := startResourceServer(as)
	t.Cleanup(rs.srv.Close)
	return rs
}

// startResourceServer starts a resourceServer for tokens of as; Close it
// with rs.srv.Close.
func startResourceServer(as *authServer) *resourceServer {
	rs := &resourceServer{as: as, needs: map[string]string{}, needsACR: map[string]string{}, needsClaims: map[string]string{}}
	rs.srv = httptest.NewServer(http.HandlerFunc(rs.serve))
	rs.resource = rs.srv.URL + "/mcp"
	as.resource = rs.resource
	return rs
}

func (rs *resourceServer) metadataURL() string {
	return rs.srv.URL + "/.well-known/oauth-protected-resource/mcp"
}

func (rs *resourceServer) serve(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/.well-known/oauth-protected-resource/mcp" && !rs.noMetadata {
		m := map[string]any{"resource": rs.resource, "authorization_servers": []string{rs.authServer().issuer}}
		if rs.scopesSupported != nil {
			m["scopes_supported"] = rs.scopesSupported
		}
		writeJSON(w, http.StatusOK, m)
		return
	}
	if !strings.HasPrefix(r.URL.Path, "/mcp") {
		http.NotFound(w, r)
		return
	}
	at, hasToken := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	meta := fmt.Sprintf("resource_metadata=%q", rs.metadataURL())
	if rs.noMetadata {
		meta = `realm="mcp"`
	}
	if !hasToken {
		ch := "Bearer " + meta
		if rs.initialScope != "" {
			ch += fmt.Sprintf(", scope=%q", rs.initialScope)
		}
		w.Header().Set("WWW-Authenticate", ch)
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	tok, ok := rs.authServer().introspect(at)
	if !ok || tok.resource != rs.resource {
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token", `+meta)
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	if need := rs.needs[r.URL.Path]; need != "" {
		for _, s := range strings.Fields(need) {
			if !slices.Contains(tok.scopes, s) {
				w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer error="insufficient_scope", scope=%q, %s`, need, meta))
				w.WriteHeader(http.StatusForbidden)
				return
			}
		}
	}
	if acr := rs.needsACR[r.URL.Path]; acr != "" && !slices.Contains(strings.Fields(acr), tok.acr) {
		w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer error="insufficient_user_authentication", acr_values=%q, max_age=0, %s`, acr, meta))
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	if claims := rs.needsClaims[r.URL.Path]; claims != "" && tok.acr != "urn:high" {
		w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer error="insufficient_claims", claims=%q, %s`,
			base64.StdEncoding.EncodeToString([]byte(claims)), meta))
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	fmt.Fprintf(w, "ok %s", r.URL.Path)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func tokenError(w http.ResponseWriter, status int, code string) {
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Basic realm="token"`)
	}
	writeJSON(w, status, map[string]string{"error": code})
}

func s256(verifier string) string {
	sum := sha256.Sum256([]byte(verifier))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

func random() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}
