// Package dpoptest checks DPoP proofs (RFC 9449 §4.3) the way a resource
// server or a token endpoint does, for tests: signature with the embedded
// key, typ, alg, htm, htu, iat window, a jti never seen before, ath of the
// presented token, the server's nonce, and the key's thumbprint against
// the one the token is bound to.
package dpoptest

import (
	"crypto"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// Algs are the algorithms the Verifier accepts: asymmetric only (RFC 9449
// §4.3 check 5).
var algs = []jose.SignatureAlgorithm{jose.ES256, jose.ES384, jose.ES512, jose.PS256, jose.RS256, jose.EdDSA}

// Verifier checks proofs. The zero value checks everything but the nonce;
// it is safe for concurrent use.
type Verifier struct {
	// Window is how far iat may be from now. Zero means a minute.
	Window time.Duration

	mu    sync.Mutex
	nonce string
	jtis  map[string]bool
}

// SetNonce makes nonce the one every proof must carry from now on (RFC
// 9449 §8, §9); "" demands none.
func (v *Verifier) SetNonce(nonce string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.nonce = nonce
}

// Nonce is the nonce proofs must carry, or "".
func (v *Verifier) Nonce() string {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.nonce
}

// Proof is a verified proof.
type Proof struct {
	JKT   string // thumbprint of the key that signed it (RFC 7638)
	JTI   string
	Nonce string
}

// Errors of [Verifier.Check].
var (
	ErrNoProof     = errors.New("dpoptest: no DPoP proof, or more than one")
	ErrReplayed    = errors.New("dpoptest: jti seen before")
	ErrWrongNonce  = errors.New("dpoptest: proof without the server's nonce")
	ErrWrongATH    = errors.New("dpoptest: ath is not the presented token's hash")
	ErrWrongTarget = errors.New("dpoptest: htm or htu is not this request's")
)

// Check verifies the DPoP proof of r, a request to the URL u (r.URL lacks
// scheme and host on a server), presenting accessToken ("" at a token
// endpoint). The jti of a proof that passes is remembered.
func (v *Verifier) Check(r *http.Request, u *url.URL, accessToken string) (*Proof, error) {
	vs := r.Header.Values("DPoP")
	if len(vs) != 1 || strings.Contains(vs[0], ",") {
		return nil, ErrNoProof
	}
	jws, err := jose.ParseSignedCompact(vs[0], algs)
	if err != nil {
		return nil, fmt.Errorf("dpoptest: parsing proof: %w", err)
	}
	if len(jws.Signatures) != 1 {
		return nil, errors.New("dpoptest: not one signature")
	}
	h := jws.Signatures[0].Protected
	if typ, _ := h.ExtraHeaders[jose.HeaderType].(string); typ != "dpop+jwt" {
		return nil, errors.New("dpoptest: typ is not dpop+jwt")
	}
	if h.JSONWebKey == nil || !h.JSONWebKey.IsPublic() {
		return nil, errors.New("dpoptest: no public jwk header")
	}
	payload, err := jws.Verify(h.JSONWebKey)
	if err != nil {
		return nil, fmt.Errorf("dpoptest: signature: %w", err)
	}
	var c struct {
		JTI   string `json:"jti"`
		HTM   string `json:"htm"`
		HTU   string `json:"htu"`
		IAT   int64  `json:"iat"`
		ATH   string `json:"ath"`
		Nonce string `json:"nonce"`
	}
	if err := json.Unmarshal(payload, &c); err != nil {
		return nil, fmt.Errorf("dpoptest: claims: %w", err)
	}
	if c.JTI == "" {
		return nil, errors.New("dpoptest: no jti")
	}
	want := url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path}
	if c.HTM != r.Method || c.HTU != want.String() {
		return nil, ErrWrongTarget
	}
	window := v.Window
	if window == 0 {
		window = time.Minute
	}
	if d := time.Since(time.Unix(c.IAT, 0)); d > window || d < -window {
		return nil, errors.New("dpoptest: iat outside the window")
	}
	if accessToken != "" || c.ATH != "" {
		sum := sha256.Sum256([]byte(accessToken))
		if c.ATH != base64.RawURLEncoding.EncodeToString(sum[:]) {
			return nil, ErrWrongATH
		}
	}
	if n := v.Nonce(); n != "" && c.Nonce != n {
		return nil, ErrWrongNonce
	}
	tp, err := h.JSONWebKey.Thumbprint(crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("dpoptest: thumbprint: %w", err)
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.jtis[c.JTI] {
		return nil, ErrReplayed
	}
	if v.jtis == nil {
		v.jtis = make(map[string]bool)
	}
	v.jtis[c.JTI] = true
	return &Proof{JKT: base64.RawURLEncoding.EncodeToString(tp), JTI: c.JTI, Nonce: c.Nonce}, nil
}

// Resource protects next as a resource server taking DPoP-bound tokens
// does (RFC 9449 §7): "Authorization: DPoP <token>" with a proof of this
// request carrying the token's hash, signed by the key the token is bound
// to, which boundTo returns ("" for a token it does not know). With a
// nonce set, a proof without it draws 401 use_dpop_nonce with the nonce
// (RFC 9449 §9). The scheme and host of the request's URL are taken from
// base, the resource's origin as clients name it. Refusals are 401 DPoP
// challenges (RFC 9449 §7.1).
func (v *Verifier) Resource(base *url.URL, boundTo func(token string) string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		refuse := func(code string) {
			w.Header().Set("WWW-Authenticate", `DPoP algs="ES256 ES384 ES512 PS256 EdDSA", error="`+code+`"`)
			w.WriteHeader(http.StatusUnauthorized)
		}
		scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " ")
		if !ok || !strings.EqualFold(scheme, "DPoP") {
			w.Header().Set("WWW-Authenticate", `DPoP algs="ES256 ES384 ES512 PS256 EdDSA"`)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		u := &url.URL{Scheme: base.Scheme, Host: base.Host, Path: r.URL.Path}
		p, err := v.Check(r, u, tok)
		switch {
		case errors.Is(err, ErrWrongNonce):
			w.Header().Set("DPoP-Nonce", v.Nonce())
			refuse("use_dpop_nonce")
			return
		case err != nil:
			refuse("invalid_dpop_proof")
			return
		}
		if jkt := boundTo(tok); jkt == "" || jkt != p.JKT {
			refuse("invalid_token")
			return
		}
		next.ServeHTTP(w, r)
	})
}
