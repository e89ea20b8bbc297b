// Package idp is an enterprise identity provider for the examples, on
// loopback: it signs its users' ID tokens (OpenID Connect Core 1.0 §2)
// and exchanges one (RFC 8693 §2.1) for an identity assertion JWT
// authorization grant (ID-JAG), signed with typ oauth-id-jag+jwt, for an
// authorization server it knows the client at. That authorization server
// trusts its key (see authserver.Config.IDJAGIssuers).
package idp

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// The token types and grant of the exchange.
const (
	grantTokenExchange = "urn:ietf:params:oauth:grant-type:token-exchange"
	tokenTypeIDToken   = "urn:ietf:params:oauth:token-type:id_token"
	tokenTypeIDJAG     = "urn:ietf:params:oauth:token-type:id-jag"
)

// jagTTL is the ID-JAGs' lifetime: minutes, as the grant intends.
const jagTTL = 5 * time.Minute

// Config configures a Server.
type Config struct {
	// ClientID is the client's identifier at the IdP: the ID tokens'
	// audience, and the client_id a token exchange must carry.
	ClientID string
	// Clients maps an authorization server's issuer, the audience of an
	// exchange, to the client's identifier there, which the ID-JAG names.
	Clients map[string]string
}

// Server is a started IdP.
type Server struct {
	// URL is its issuer identifier.
	URL string

	cfg Config
	key *ecdsa.PrivateKey
	srv *httptest.Server

	mu        sync.Mutex
	exchanges int
}

// New starts an IdP.
func New(cfg Config) (*Server, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, key: key}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", s.metadata)
	mux.HandleFunc("POST /token", s.token)
	mux.HandleFunc("GET /authorize", func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "logins happen out of band here (Server.IDToken)", http.StatusNotImplemented)
	})
	s.srv = httptest.NewServer(mux)
	s.URL = s.srv.URL
	return s, nil
}

// Close stops the IdP.
func (s *Server) Close() { s.srv.Close() }

// PublicKey is the key its ID tokens and ID-JAGs verify with.
func (s *Server) PublicKey() crypto.PublicKey { return &s.key.PublicKey }

// Exchanges counts the token exchange requests so far, refused ones too.
func (s *Server) Exchanges() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.exchanges
}

// IDToken signs an ID token for user, valid for ttl, as a single sign-on
// gives the client.
func (s *Server) IDToken(user string, ttl time.Duration) (string, error) {
	now := time.Now()
	return s.sign("JWT", jwt.Claims{
		Issuer: s.URL, Subject: user, Audience: jwt.Audience{s.cfg.ClientID},
		IssuedAt: jwt.NewNumericDate(now), Expiry: jwt.NewNumericDate(now.Add(ttl)),
	}, nil)
}

func (s *Server) sign(typ string, claims jwt.Claims, extra any) (string, error) {
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: s.key}, (&jose.SignerOptions{}).WithType(jose.ContentType(typ)))
	if err != nil {
		return "", err
	}
	b := jwt.Signed(signer).Claims(claims)
	if extra != nil {
		b = b.Claims(extra)
	}
	return b.Serialize()
}

func (s *Server) metadata(w http.ResponseWriter, _ *http.Request) {
	// What an OpenID Provider lists, the authorization endpoint and PKCE
	// included (the go-sdk's discovery requires S256), though here the
	// users' logins happen out of band: IDToken stands for them.
	writeJSON(w, http.StatusOK, map[string]any{
		"issuer": s.URL, "token_endpoint": s.URL + "/token", "authorization_endpoint": s.URL + "/authorize",
		"response_types_supported":              []string{"code"},
		"code_challenge_methods_supported":      []string{"S256"},
		"grant_types_supported":                 []string{"authorization_code", grantTokenExchange},
		"token_endpoint_auth_methods_supported": []string{"none"},
	})
}

// token is the token endpoint: the token exchange of an ID token for an
// ID-JAG, with the checks of RFC 8693 §2.1.
func (s *Server) token(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		oauthError(w, http.StatusBadRequest, "invalid_request", "not a form")
		return
	}
	f := r.PostForm
	s.mu.Lock()
	s.exchanges++
	s.mu.Unlock()
	switch {
	case f.Get("grant_type") != grantTokenExchange:
		oauthError(w, http.StatusBadRequest, "unsupported_grant_type", f.Get("grant_type"))
		return
	case f.Get("client_id") != s.cfg.ClientID:
		oauthError(w, http.StatusUnauthorized, "invalid_client", "unknown client")
		return
	case f.Get("subject_token_type") != tokenTypeIDToken, f.Get("requested_token_type") != tokenTypeIDJAG:
		oauthError(w, http.StatusBadRequest, "invalid_request", "an ID token for an ID-JAG only")
		return
	}
	client, ok := s.cfg.Clients[f.Get("audience")]
	if !ok {
		oauthError(w, http.StatusBadRequest, "invalid_target", "unknown audience")
		return
	}
	user, err := s.verifyIDToken(f.Get("subject_token"))
	if err != nil {
		oauthError(w, http.StatusBadRequest, "invalid_grant", "the ID token: "+err.Error())
		return
	}
	now := time.Now()
	jti := make([]byte, 16)
	_, _ = rand.Read(jti)
	jag, err := s.sign("oauth-id-jag+jwt", jwt.Claims{
		Issuer: s.URL, Subject: user, Audience: jwt.Audience{f.Get("audience")},
		ID: base64.RawURLEncoding.EncodeToString(jti), IssuedAt: jwt.NewNumericDate(now), Expiry: jwt.NewNumericDate(now.Add(jagTTL)),
	}, map[string]any{"client_id": client, "resource": f.Get("resource"), "scope": f.Get("scope")})
	if err != nil {
		oauthError(w, http.StatusInternalServerError, "server_error", "signing")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"access_token": jag, "issued_token_type": tokenTypeIDJAG, "token_type": "N_A",
		"expires_in": int(jagTTL.Seconds()), "scope": f.Get("scope"),
	})
}

func (s *Server) verifyIDToken(raw string) (string, error) {
	tok, err := jwt.ParseSigned(raw, []jose.SignatureAlgorithm{jose.ES256})
	if err != nil {
		return "", err
	}
	var claims jwt.Claims
	if err := tok.Claims(&s.key.PublicKey, &claims); err != nil {
		return "", err
	}
	if err := claims.Validate(jwt.Expected{Issuer: s.URL, AnyAudience: jwt.Audience{s.cfg.ClientID}, Time: time.Now()}); err != nil {
		return "", err
	}
	return claims.Subject, nil
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
