package realserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// ErrInvalidToken is what Verify functions return, wrapped, for a token
// the resource server must refuse.
var ErrInvalidToken = errors.New("realserver: invalid access token")

// maxJWKS bounds the key set document read.
const maxJWKS = 1 << 20

// jwtVerifier checks JWT access tokens (RFC 9068) as a resource server
// does: signed by one of the issuer's keys, issued by it, for the
// resource, unexpired.
type jwtVerifier struct {
	issuer, resource, jwksURL string
	hc                        *http.Client

	mu   sync.Mutex
	keys *jose.JSONWebKeySet
}

// accessClaims are the claims of a JWT access token that the resource
// server reads (RFC 9068 §2.2, OpenID Connect Core 1.0 §2 for acr and
// auth_time).
type accessClaims struct {
	jwt.Claims
	Scope    string `json:"scope"`
	ClientID string `json:"client_id"`
	ACR      string `json:"acr"`
	AuthTime int64  `json:"auth_time"`
	// Cnf is the confirmation of a sender-constrained token: the
	// thumbprint of its DPoP key (RFC 9449 §6.1).
	Cnf struct {
		JKT string `json:"jkt"`
	} `json:"cnf"`
}

func (v *jwtVerifier) verify(ctx context.Context, token string) (*TokenInfo, error) {
	parsed, err := jwt.ParseSigned(token, []jose.SignatureAlgorithm{jose.RS256, jose.ES256, jose.PS256, jose.EdDSA})
	if err != nil {
		return nil, fmt.Errorf("%w: not a signed JWT: %v", ErrInvalidToken, err)
	}
	if len(parsed.Headers) != 1 {
		return nil, fmt.Errorf("%w: %d signatures", ErrInvalidToken, len(parsed.Headers))
	}
	// RFC 9068 §4: the typ tells an access token from an ID token signed
	// with the same keys.
	if typ, _ := parsed.Headers[0].ExtraHeaders[jose.HeaderType].(string); !strings.EqualFold(strings.TrimPrefix(strings.ToLower(typ), "application/"), "at+jwt") {
		return nil, fmt.Errorf("%w: typ %q is not at+jwt", ErrInvalidToken, typ)
	}
	keys, err := v.keySet(ctx, parsed.Headers[0].KeyID)
	if err != nil {
		return nil, err
	}
	var c accessClaims
	if err := parsed.Claims(keys, &c); err != nil {
		return nil, fmt.Errorf("%w: signature: %v", ErrInvalidToken, err)
	}
	if c.Expiry == nil {
		return nil, fmt.Errorf("%w: no exp", ErrInvalidToken)
	}
	// No leeway: the issuer's clock is this machine's.
	if err := c.ValidateWithLeeway(jwt.Expected{Issuer: v.issuer, AnyAudience: jwt.Audience{v.resource}, Time: time.Now()}, 0); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidToken, err)
	}
	info := &TokenInfo{Subject: c.Subject, Scopes: strings.Fields(c.Scope), Expires: c.Expiry.Time(), ACR: c.ACR, JKT: c.Cnf.JKT}
	if c.AuthTime > 0 {
		info.AuthTime = time.Unix(c.AuthTime, 0)
	}
	return info, nil
}

// keySet returns the issuer's keys, fetched again when none has kid (the
// issuer rotated its keys).
func (v *jwtVerifier) keySet(ctx context.Context, kid string) (*jose.JSONWebKeySet, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.keys != nil && len(v.keys.Key(kid)) > 0 {
		return v.keys, nil
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, v.jwksURL, nil)
	if err != nil {
		return nil, err
	}
	resp, err := v.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("realserver: fetching the key set: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("realserver: fetching the key set: %s", resp.Status)
	}
	var keys jose.JSONWebKeySet
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxJWKS)).Decode(&keys); err != nil {
		return nil, fmt.Errorf("realserver: the key set: %w", err)
	}
	v.keys = &keys
	return v.keys, nil
}
