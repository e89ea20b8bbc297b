package grants_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
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

	"github.com/stepup-go/stepup/internal/oauthtest"
)

// signAlgs are the algorithms the test IdP accepts in JWTs.
var signAlgs = []jose.SignatureAlgorithm{jose.ES256, jose.ES384, jose.ES512, jose.RS256, jose.PS256, jose.EdDSA}

// authServer is the repository's strict test authorization server (package
// oauthtest): it checks the client's authentication by its registered
// method (RFC 6749 §2.3.1, RFC 7523 §3 with the issuer as audience, each
// jti once), the grants it is set to support, the assertions of the JWT
// bearer grant (signature, audience, expiry, and for an ID-JAG its typ,
// client_id and resource), the RFC 8707 resource, and scopes it refuses.
// It issues opaque tokens that its resource servers look up, and a refresh
// token with them, which a client of these grants must not use.
type authServer = oauthtest.Server

// asClient is a client as the tests register it.
type asClient struct {
	id, secret, method string
	key                crypto.PublicKey // private_key_jwt
}

// env is what the servers need of a test, or of an example: somewhere
// to stop them, and to fail.
type env interface {
	Cleanup(func())
	Fatal(args ...any)
}

func newAuthServer(t env) *authServer {
	as := oauthtest.New(oauthtest.Config{
		AuthMethods:             []string{"client_secret_basic", "client_secret_post", "private_key_jwt", "none"},
		RefreshWithClientGrants: true,
	})
	t.Cleanup(as.Close)
	return as
}

// register adds c to as, as an administrator would.
func register(as *authServer, c *asClient) {
	as.Register(oauthtest.Client{ID: c.id, Secret: c.secret, AuthMethod: c.method, Key: c.key})
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
	as.SetResource(rs.resource)
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
			issuers = []string{rs.as.IssuerID()}
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
	info, ok := rs.as.Introspect(tok)
	if !ok || info.Resource != rs.resource {
		w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer error="invalid_token", resource_metadata=%q`, rs.prmURL()))
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	if need != "" && !slices.Contains(info.Scopes, need) {
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
