package grants

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// assertionLifetime is how long a client assertion is valid: long
// enough for clock skew, short enough that one captured is soon of no use
// (RFC 7523 §3: the server may bound exp).
const assertionLifetime = 2 * time.Minute

// clientAssertion signs a client authentication JWT for the audience aud
// (RFC 7523 §3): iss and sub the client_id, a jti of 128 random bits, and
// a short exp.
func clientAssertion(k PrivateKeyJWT, aud string) (string, error) {
	alg, err := algorithmFor(k.Key, k.Algorithm)
	if err != nil {
		return "", err
	}
	jti := make([]byte, 16)
	if _, err := rand.Read(jti); err != nil {
		return "", fmt.Errorf("grants: jti: %w", err)
	}
	key := jose.SigningKey{Algorithm: alg, Key: jose.JSONWebKey{Key: k.Key, KeyID: k.KeyID}}
	signer, err := jose.NewSigner(key, (&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrKeyType, err)
	}
	now := time.Now()
	claims := jwt.Claims{
		Issuer:   k.ClientID,
		Subject:  k.ClientID,
		Audience: jwt.Audience{aud},
		ID:       base64.RawURLEncoding.EncodeToString(jti),
		IssuedAt: jwt.NewNumericDate(now),
		Expiry:   jwt.NewNumericDate(now.Add(assertionLifetime)),
	}
	s, err := jwt.Signed(signer).Claims(claims).Serialize()
	if err != nil {
		return "", fmt.Errorf("grants: signing the client assertion: %w", err)
	}
	return s, nil
}

// algorithmFor returns the JWS algorithm to sign with key: want, when it
// fits the key, else the key's own when want is "".
func algorithmFor(key crypto.Signer, want string) (jose.SignatureAlgorithm, error) {
	var fit []jose.SignatureAlgorithm
	switch k := key.(type) {
	case *ecdsa.PrivateKey:
		switch k.Curve {
		case elliptic.P256():
			fit = []jose.SignatureAlgorithm{jose.ES256}
		case elliptic.P384():
			fit = []jose.SignatureAlgorithm{jose.ES384}
		case elliptic.P521():
			fit = []jose.SignatureAlgorithm{jose.ES512}
		}
	case *rsa.PrivateKey:
		if k.N.BitLen() < 2048 {
			// RFC 7518 §3.3: a key of 2048 bits or larger MUST be used.
			return "", fmt.Errorf("%w: an RSA key of %d bits, fewer than 2048 (RFC 7518 §3.3)", ErrKeyType, k.N.BitLen())
		}
		fit = []jose.SignatureAlgorithm{jose.RS256, jose.RS384, jose.RS512, jose.PS256, jose.PS384, jose.PS512}
	case ed25519.PrivateKey:
		fit = []jose.SignatureAlgorithm{jose.EdDSA}
	case nil:
		return "", fmt.Errorf("%w: no key", ErrKeyType)
	}
	if len(fit) == 0 {
		return "", fmt.Errorf("%w: a %T", ErrKeyType, key)
	}
	if want == "" {
		return fit[0], nil
	}
	if !slices.Contains(fit, jose.SignatureAlgorithm(want)) {
		return "", fmt.Errorf("%w: %s cannot sign with a %T (it can with %q)", ErrKeyType, want, key, fit)
	}
	return jose.SignatureAlgorithm(want), nil
}

// ParsePrivateKeyPEM parses the first PEM block of data as a private key
// to sign client assertions with: PKCS #8 ("PRIVATE KEY"), SEC 1 ("EC
// PRIVATE KEY") or PKCS #1 ("RSA PRIVATE KEY"). Its errors never hold
// key material.
func ParsePrivateKeyPEM(data []byte) (crypto.Signer, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, errors.New("grants: no PEM block in the private key")
	}
	var key any
	var err error
	switch block.Type {
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(block.Bytes)
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	default:
		return nil, fmt.Errorf("grants: a PEM block of type %q is not a private key", block.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("grants: parsing the %s: %w", block.Type, err)
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("%w: a %T", ErrKeyType, key)
	}
	return signer, nil
}
