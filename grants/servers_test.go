package grants_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
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
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// signAlgs are the algorithms the test servers accept in JWTs.
var signAlgs = []jose.SignatureAlgorithm{jose.ES256, jose.ES384, jose.ES512, jose.RS256, jose.PS256, jose.EdDSA}

// authServer is an OAuth 2.0 authorization server for the tests, on
// loopback, that checks what a strict real one checks: the client's
// authentication by its registered method (RFC 6749 §2.3.1, RFC 7523 §3
// with the issuer as audience, each jti once), the grants it is set to
// support, the assertions of the JWT bearer grant (signature, audience,
// expiry, and for an ID-JAG its typ, client_id and resource), the RFC
// 8707 resource, and scopes it refuses. It issues opaque tokens that its
// resource servers look up.
type authServer struct {
	srv    *httptest.Server
	issuer string

	// Configuration; set before the first request.
	grantTypes  []string // grant_types_supported; nil = not listed
	authMethods []string // token_endpoint_auth_methods_supported; nil = not listed
	resource    string   // the resource it issues tokens for
	refuse      map[string]string
	accessTTL   time.Duration
	assertAud   string // the aud a client assertion must have; "" = the issuer
	// override, when set, answers a token request instead, when it
	// returns true.
	override func(w http.ResponseWriter, r *http.Request) bool

	mu       sync.Mutex
	clients  map[string]*asClient
	trusted  map[string]crypto.PublicKey // issuers of JWT bearer assertions (workloads) and their keys
	idjag    map[string]crypto.PublicKey // IdPs whose ID-JAGs it accepts
	jtis     map[string]bool
	access   map[string][]string // access token → scopes
	requests []tokenRequest
}

type asClient struct {
	id, secret, method string
	key                crypto.PublicKey // private_key_jwt
}

// tokenRequest is what the authorization server recorded of one request.
type tokenRequest struct {
	form       url.Values
	authMethod string // how the client authenticated
	clientID   string
}

// env is what the servers need of a test, or of an example: somewhere
// to stop them, and to fail.
type env interface {
	Cleanup(func())
	Fatal(args ...any)
}

func newAuthServer(t env) *authServer {
	as := &authServer{
		clients: map[string]*asClient{},
		trusted: map[string]crypto.PublicKey{},
		idjag:   map[string]crypto.PublicKey{},
		jtis:    map[string]bool{},
		access:  map[string][]string{},
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/oauth-authorization-server", as.metadata)
	mux.HandleFunc("POST /token", as.token)
	as.srv = httptest.NewServer(mux)
	as.issuer = as.srv.URL
	t.Cleanup(as.srv.Close)
	return as
}

func (as *authServer) register(c *asClient) {
	as.mu.Lock()
	defer as.mu.Unlock()
	as.clients[c.id] = c
}

func (as *authServer) metadata(w http.ResponseWriter, _ *http.Request) {
	m := map[string]any{
		"issuer":                   as.issuer,
		"token_endpoint":           as.issuer + "/token",
		"response_types_supported": []string{"code"},
	}
	if as.grantTypes != nil {
		m["grant_types_supported"] = as.grantTypes
	}
	if as.authMethods != nil {
		m["token_endpoint_auth_methods_supported"] = as.authMethods
	}
	writeJSON(w, http.StatusOK, m)
}

// tokenRequests returns a copy of the requests recorded.
func (as *authServer) tokenRequests() []tokenRequest {
	as.mu.Lock()
	defer as.mu.Unlock()
	return slices.Clone(as.requests)
}

func (as *authServer) token(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		oauthError(w, http.StatusBadRequest, "invalid_request", "form")
		return
	}
	as.mu.Lock()
	defer as.mu.Unlock()
	rec := tokenRequest{form: r.PostForm}
	client, method, err := as.authenticate(r)
	rec.authMethod = method
	if client != nil {
		rec.clientID = client.id
	}
	as.requests = append(as.requests, rec)
	if as.override != nil && as.override(w, r) {
		return
	}
	if err != nil {
		oauthError(w, http.StatusUnauthorized, "invalid_client", err.Error())
		return
	}
	grant := r.PostForm.Get("grant_type")
	if as.grantTypes != nil && !slices.Contains(as.grantTypes, grant) {
		oauthError(w, http.StatusBadRequest, "unsupported_grant_type", grant)
		return
	}
	if got := r.PostForm.Get("resource"); got != as.resource {
		oauthError(w, http.StatusBadRequest, "invalid_target", "resource "+got)
		return
	}
	switch grant {
	case "client_credentials":
		if client == nil || client.method == "none" {
			oauthError(w, http.StatusUnauthorized, "invalid_client", "a confidential client is required")
			return
		}
	case "urn:ietf:params:oauth:grant-type:jwt-bearer":
		if err := as.checkAssertion(r.PostForm.Get("assertion"), client); err != nil {
			oauthError(w, http.StatusBadRequest, "invalid_grant", err.Error())
			return
		}
	default:
		oauthError(w, http.StatusBadRequest, "unsupported_grant_type", grant)
		return
	}
	scopes := strings.Fields(r.PostForm.Get("scope"))
	for _, s := range scopes {
		if code, ok := as.refuse[s]; ok {
			oauthError(w, http.StatusBadRequest, code, "scope "+s+" is not for this client")
			return
		}
	}
	tok := randomString()
	as.access[tok] = scopes
	ttl := as.accessTTL
	if ttl == 0 {
		ttl = time.Hour
	}
	// A refresh token too, which a client credentials client must not
	// use (RFC 6749 §4.4.3 says none SHOULD be sent; some servers do).
	writeJSON(w, http.StatusOK, map[string]any{
		"access_token": tok, "token_type": "Bearer", "expires_in": int(ttl.Seconds()),
		"scope": strings.Join(scopes, " "), "refresh_token": "rt-" + tok,
	})
}

// authenticate checks the client's authentication, by the method it
// registered with.
func (as *authServer) authenticate(r *http.Request) (*asClient, string, error) {
	f := r.PostForm
	if id, secret, ok := r.BasicAuth(); ok {
		id, _ = url.QueryUnescape(id)
		secret, _ = url.QueryUnescape(secret)
		return as.checkSecret(id, secret, "client_secret_basic")
	}
	if f.Has("client_secret") {
		return as.checkSecret(f.Get("client_id"), f.Get("client_secret"), "client_secret_post")
	}
	if f.Has("client_assertion") {
		c, err := as.checkClientAssertion(f)
		return c, "private_key_jwt", err
	}
	if id := f.Get("client_id"); id != "" {
		c := as.clients[id]
		if c == nil || c.method != "none" {
			return nil, "none", fmt.Errorf("client %q may not go unauthenticated", id)
		}
		return c, "none", nil
	}
	return nil, "", nil
}

func (as *authServer) checkSecret(id, secret, method string) (*asClient, string, error) {
	c := as.clients[id]
	if c == nil || c.method != method || subtle.ConstantTimeCompare([]byte(c.secret), []byte(secret)) != 1 {
		return nil, method, fmt.Errorf("client %q: bad credentials for %s", id, method)
	}
	return c, method, nil
}

// checkClientAssertion verifies a private_key_jwt (RFC 7523 §3): type,
// signature, iss = sub = client_id, aud the issuer, exp, and a jti not
// seen before.
func (as *authServer) checkClientAssertion(f url.Values) (*asClient, error) {
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
	c := as.clients[unverified.Issuer]
	if c == nil || c.method != "private_key_jwt" {
		return nil, fmt.Errorf("no private_key_jwt client %q", unverified.Issuer)
	}
	var claims jwt.Claims
	if err := tok.Claims(c.key, &claims); err != nil {
		return nil, err
	}
	aud := as.assertAud
	if aud == "" {
		aud = as.issuer
	}
	if err := claims.Validate(jwt.Expected{Issuer: c.id, Subject: c.id, AnyAudience: jwt.Audience{aud}, Time: time.Now()}); err != nil {
		return nil, err
	}
	if claims.ID == "" || as.jtis[claims.ID] {
		return nil, fmt.Errorf("jti %q missing or replayed", claims.ID)
	}
	as.jtis[claims.ID] = true
	return c, nil
}

// checkAssertion verifies the assertion of a JWT bearer grant (RFC 7523
// §3): from a trusted workload issuer, or an ID-JAG from a trusted IdP
// naming the authenticated client and this server's resource.
func (as *authServer) checkAssertion(assertion string, client *asClient) error {
	tok, err := jwt.ParseSigned(assertion, signAlgs)
	if err != nil {
		return err
	}
	var unverified jwt.Claims
	if err := tok.UnsafeClaimsWithoutVerification(&unverified); err != nil {
		return err
	}
	if typ, _ := tok.Headers[0].ExtraHeaders["typ"].(string); typ == "oauth-id-jag+jwt" {
		key := as.idjag[unverified.Issuer]
		if key == nil {
			return fmt.Errorf("no trusted IdP %q", unverified.Issuer)
		}
		var claims jwt.Claims
		var jag struct {
			ClientID string `json:"client_id"`
			Resource string `json:"resource"`
		}
		if err := tok.Claims(key, &claims, &jag); err != nil {
			return err
		}
		if err := claims.Validate(jwt.Expected{AnyAudience: jwt.Audience{as.issuer}, Time: time.Now()}); err != nil {
			return err
		}
		if client == nil || jag.ClientID != client.id {
			return fmt.Errorf("the ID-JAG is for client %q", jag.ClientID)
		}
		if jag.Resource != as.resource {
			return fmt.Errorf("the ID-JAG is for resource %q", jag.Resource)
		}
		return nil
	}
	key := as.trusted[unverified.Issuer]
	if key == nil {
		return fmt.Errorf("no trusted issuer %q", unverified.Issuer)
	}
	var claims jwt.Claims
	if err := tok.Claims(key, &claims); err != nil {
		return err
	}
	return claims.Validate(jwt.Expected{AnyAudience: jwt.Audience{as.issuer}, Time: time.Now()})
}

// scopesOf returns the scopes of an access token it issued, and whether
// it did.
func (as *authServer) scopesOf(tok string) ([]string, bool) {
	as.mu.Lock()
	defer as.mu.Unlock()
	s, ok := as.access[tok]
	return s, ok
}

// revoke forgets an access token, as on expiry or revocation.
func (as *authServer) revoke(tok string) {
	as.mu.Lock()
	defer as.mu.Unlock()
	delete(as.access, tok)
}

// resourceServer is a protected resource (an MCP server's HTTP face) that
// publishes RFC 9728 metadata and asks for a scope per path, with the
// challenges of RFC 6750 §3.
type resourceServer struct {
	srv      *httptest.Server
	resource string
	as       *authServer
	needs    map[string]string // path → scope
	issuers  []string          // authorization_servers; nil = as's alone

	mu     sync.Mutex
	tokens []string // every token presented
}

func newResourceServer(t env, as *authServer) *resourceServer {
	rs := &resourceServer{as: as, needs: map[string]string{}}
	rs.srv = httptest.NewServer(http.HandlerFunc(rs.serve))
	rs.resource = rs.srv.URL + "/mcp"
	as.resource = rs.resource
	t.Cleanup(rs.srv.Close)
	return rs
}

func (rs *resourceServer) prmURL() string {
	return rs.srv.URL + "/.well-known/oauth-protected-resource/mcp"
}

func (rs *resourceServer) serve(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/.well-known/oauth-protected-resource/mcp" {
		issuers := rs.issuers
		if issuers == nil {
			issuers = []string{rs.as.issuer}
		}
		writeJSON(w, http.StatusOK, map[string]any{"resource": rs.resource, "authorization_servers": issuers})
		return
	}
	need := rs.needs[r.URL.Path]
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		challenge := fmt.Sprintf(`Bearer resource_metadata=%q`, rs.prmURL())
		if need != "" {
			challenge += fmt.Sprintf(`, scope=%q`, need)
		}
		w.Header().Set("WWW-Authenticate", challenge)
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	rs.mu.Lock()
	rs.tokens = append(rs.tokens, tok)
	rs.mu.Unlock()
	scopes, ok := rs.as.scopesOf(tok)
	if !ok {
		w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer error="invalid_token", resource_metadata=%q`, rs.prmURL()))
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	if need != "" && !slices.Contains(scopes, need) {
		w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer error="insufficient_scope", scope=%q, resource_metadata=%q`, need, rs.prmURL()))
		w.WriteHeader(http.StatusForbidden)
		return
	}
	fmt.Fprintf(w, "ok %s", r.URL.Path)
}

// idp is an enterprise identity provider for the tests: it signs the
// users' ID tokens, and exchanges one (RFC 8693) for an ID-JAG for a
// client it knows, which it signs with typ oauth-id-jag+jwt.
type idp struct {
	srv      *httptest.Server
	issuer   string
	key      *ecdsa.PrivateKey
	clientID string            // the client's ID at the IdP, the ID tokens' audience
	mcpID    map[string]string // the client's ID at each authorization server, by issuer
	refuse   map[string]string // scope → error code

	mu        sync.Mutex
	exchanges []url.Values
}

func newIdP(t env) *idp {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	p := &idp{key: key, clientID: "idp-client", mcpID: map[string]string{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{
			"issuer": p.issuer, "token_endpoint": p.issuer + "/token",
			"grant_types_supported": []string{"urn:ietf:params:oauth:grant-type:token-exchange"},
		})
	})
	mux.HandleFunc("POST /token", p.token)
	p.srv = httptest.NewServer(mux)
	p.issuer = p.srv.URL
	t.Cleanup(p.srv.Close)
	return p
}

// idToken signs an ID token for user, valid for ttl.
func (p *idp) idToken(t env, user string, ttl time.Duration) string {
	s, err := p.sign("JWT", jwt.Claims{
		Issuer: p.issuer, Subject: user, Audience: jwt.Audience{p.clientID},
		IssuedAt: jwt.NewNumericDate(time.Now()), Expiry: jwt.NewNumericDate(time.Now().Add(ttl)),
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func (p *idp) sign(typ string, claims jwt.Claims, extra any) (string, error) {
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: p.key}, (&jose.SignerOptions{}).WithType(jose.ContentType(typ)))
	if err != nil {
		return "", err
	}
	b := jwt.Signed(signer).Claims(claims)
	if extra != nil {
		b = b.Claims(extra)
	}
	return b.Serialize()
}

func (p *idp) token(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		oauthError(w, http.StatusBadRequest, "invalid_request", "form")
		return
	}
	f := r.PostForm
	p.mu.Lock()
	p.exchanges = append(p.exchanges, f)
	p.mu.Unlock()
	switch {
	case f.Get("grant_type") != "urn:ietf:params:oauth:grant-type:token-exchange":
		oauthError(w, http.StatusBadRequest, "unsupported_grant_type", f.Get("grant_type"))
		return
	case f.Get("client_id") != p.clientID:
		oauthError(w, http.StatusUnauthorized, "invalid_client", "unknown client")
		return
	case f.Get("subject_token_type") != "urn:ietf:params:oauth:token-type:id_token",
		f.Get("requested_token_type") != "urn:ietf:params:oauth:token-type:id-jag",
		f.Get("audience") == "", f.Get("resource") == "":
		oauthError(w, http.StatusBadRequest, "invalid_request", "token exchange parameters")
		return
	}
	mcpClient, ok := p.mcpID[f.Get("audience")]
	if !ok {
		oauthError(w, http.StatusBadRequest, "invalid_target", "unknown audience")
		return
	}
	tok, err := jwt.ParseSigned(f.Get("subject_token"), signAlgs)
	var claims jwt.Claims
	if err == nil {
		err = tok.Claims(&p.key.PublicKey, &claims)
	}
	if err == nil {
		err = claims.Validate(jwt.Expected{Issuer: p.issuer, AnyAudience: jwt.Audience{p.clientID}, Time: time.Now()})
	}
	if err != nil {
		oauthError(w, http.StatusBadRequest, "invalid_grant", "the ID token: "+err.Error())
		return
	}
	for _, s := range strings.Fields(f.Get("scope")) {
		if code, ok := p.refuse[s]; ok {
			oauthError(w, http.StatusBadRequest, code, "policy forbids "+s)
			return
		}
	}
	jag, err := p.sign("oauth-id-jag+jwt", jwt.Claims{
		Issuer: p.issuer, Subject: claims.Subject, Audience: jwt.Audience{f.Get("audience")}, ID: randomString(),
		IssuedAt: jwt.NewNumericDate(time.Now()), Expiry: jwt.NewNumericDate(time.Now().Add(5 * time.Minute)),
	}, map[string]any{"client_id": mcpClient, "resource": f.Get("resource"), "scope": f.Get("scope")})
	if err != nil {
		oauthError(w, http.StatusInternalServerError, "server_error", "signing: "+err.Error())
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"access_token": jag, "issued_token_type": "urn:ietf:params:oauth:token-type:id-jag",
		"token_type": "N_A", "expires_in": 300, "scope": f.Get("scope"),
	})
}

func (p *idp) exchangeRequests() []url.Values {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.exchanges)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func oauthError(w http.ResponseWriter, status int, code, desc string) {
	writeJSON(w, status, map[string]string{"error": code, "error_description": desc})
}

func randomString() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}
