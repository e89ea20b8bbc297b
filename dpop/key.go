package dpop

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/cryptosigner"
)

// proofType is the typ header of a DPoP proof (RFC 9449 §4.2).
const proofType = "dpop+jwt"

// Key is the key a client proves possession of: it signs DPoP proofs, and
// the tokens issued against its proofs are bound to its public key (RFC
// 9449 §6). A Key is safe for concurrent use.
//
// Its String and LogValue never show the key, so that a Key logged by
// mistake leaks nothing.
type Key struct {
	alg  jose.SignatureAlgorithm
	priv crypto.Signer
	jkt  string
	// signer signs every proof of the key with the same protected header
	// (typ, alg, jwk): made once, since a proof goes with every request.
	// go-jose's signers only read their state, so one serves concurrent
	// proofs.
	signer jose.Signer
}

// GenerateKey returns a new ES256 (P-256) key, the algorithm every DPoP
// server is expected to accept (RFC 9449 §5.1 lists none as mandatory;
// ES256 is what the MCP DPoP extension requires).
func GenerateKey() (*Key, error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("dpop: generating key: %w", err)
	}
	return NewKey(k)
}

// NewKey returns a Key signing with s, which may be a key held in memory
// (*ecdsa.PrivateKey, *rsa.PrivateKey, ed25519.PrivateKey) or a
// [crypto.Signer] of a key kept elsewhere (a KMS, an HSM). The algorithm
// follows from the public key: ES256, ES384 or ES512 for the P-256, P-384
// and P-521 curves, PS256 for RSA (of at least 2048 bits), EdDSA for
// Ed25519.
func NewKey(s crypto.Signer) (*Key, error) {
	pub := s.Public()
	alg, err := algFor(pub)
	if err != nil {
		return nil, err
	}
	jwk := jose.JSONWebKey{Key: pub}
	tp, err := jwk.Thumbprint(crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("dpop: thumbprint: %w", err)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: signingKey(s)},
		(&jose.SignerOptions{EmbedJWK: true}).WithType(proofType))
	if err != nil {
		return nil, fmt.Errorf("dpop: proof signer: %w", err)
	}
	k := &Key{alg: alg, priv: s, jkt: base64.RawURLEncoding.EncodeToString(tp), signer: signer}
	return k, nil
}

// signingKey is s as go-jose takes it: a key in memory as it is, any other
// crypto.Signer (a KMS, an HSM) through go-jose's opaque signer, which turns
// its ASN.1 ECDSA signatures into the JWS form (RFC 7518 §3.4).
func signingKey(s crypto.Signer) any {
	switch s.(type) {
	case *ecdsa.PrivateKey, *rsa.PrivateKey, ed25519.PrivateKey:
		return s
	}
	return cryptosigner.Opaque(s)
}

func algFor(pub crypto.PublicKey) (jose.SignatureAlgorithm, error) {
	switch p := pub.(type) {
	case *ecdsa.PublicKey:
		switch p.Curve {
		case elliptic.P256():
			return jose.ES256, nil
		case elliptic.P384():
			return jose.ES384, nil
		case elliptic.P521():
			return jose.ES512, nil
		}
		return "", errors.New("dpop: unsupported elliptic curve")
	case *rsa.PublicKey:
		if p.N.BitLen() < 2048 {
			return "", errors.New("dpop: RSA key shorter than 2048 bits")
		}
		return jose.PS256, nil
	case ed25519.PublicKey:
		return jose.EdDSA, nil
	}
	return "", fmt.Errorf("dpop: unsupported key type %T", pub)
}

// Algorithm is the JWS algorithm of the key's proofs (RFC 7518 §3.1), as
// servers list it in dpop_signing_alg_values_supported (RFC 9449 §5.1).
func (k *Key) Algorithm() string { return string(k.alg) }

// Accepted checks the key's algorithm against the
// dpop_signing_alg_values_supported of a server's metadata (RFC 9449
// §5.1): none listed accepts any, since the member is optional.
func (k *Key) Accepted(algs []string) error {
	if len(algs) == 0 || slices.Contains(algs, string(k.alg)) {
		return nil
	}
	return fmt.Errorf("dpop: the server takes DPoP proofs in %q, not %s (RFC 9449 §5.1)", algs, k.alg)
}

// Thumbprint is the JWK SHA-256 thumbprint of the public key (RFC 7638),
// base64url-encoded: the dpop_jkt authorization request parameter (RFC
// 9449 §10) and the jkt of a bound token's cnf claim (RFC 9449 §6.1).
func (k *Key) Thumbprint() string { return k.jkt }

// String describes the key by its thumbprint, never its private part.
func (k *Key) String() string { return "dpop.Key{" + string(k.alg) + " " + k.jkt + "}" }

// claims are a proof's (RFC 9449 §4.2).
type claims struct {
	JTI   string `json:"jti"`
	HTM   string `json:"htm"`
	HTU   string `json:"htu"`
	IAT   int64  `json:"iat"`
	ATH   string `json:"ath,omitempty"`
	Nonce string `json:"nonce,omitempty"`
}

// Proof returns a DPoP proof (RFC 9449 §4.2) for a request of method to
// htu, which must be the request's URI without query and fragment (see
// [HTU]). accessToken, when not empty, is hashed into the ath claim, as a
// request to a resource server needs (RFC 9449 §7.1); nonce, when not
// empty, is the server's last nonce (RFC 9449 §8, §9). Each proof has a
// fresh jti and the current time as iat.
func (k *Key) Proof(method, htu, accessToken, nonce string) (string, error) {
	var jti [16]byte
	if _, err := rand.Read(jti[:]); err != nil {
		return "", fmt.Errorf("dpop: jti: %w", err)
	}
	c := claims{
		JTI:   base64.RawURLEncoding.EncodeToString(jti[:]),
		HTM:   method,
		HTU:   htu,
		IAT:   time.Now().Unix(),
		Nonce: nonce,
	}
	if accessToken != "" {
		c.ATH = AccessTokenHash(accessToken)
	}
	payload, err := json.Marshal(c)
	if err != nil {
		return "", fmt.Errorf("dpop: proof claims: %w", err)
	}
	jws, err := k.signer.Sign(payload)
	if err != nil {
		return "", fmt.Errorf("dpop: signing proof: %w", err)
	}
	proof, err := jws.CompactSerialize()
	if err != nil {
		return "", fmt.Errorf("dpop: signing proof: %w", err)
	}
	return proof, nil
}

// AccessTokenHash is the ath claim for tok: the base64url-encoded SHA-256
// of its ASCII octets (RFC 9449 §4.2).
func AccessTokenHash(tok string) string {
	h := sha256.Sum256([]byte(tok))
	return base64.RawURLEncoding.EncodeToString(h[:])
}

// MarshalPrivateJWK returns the private key as a JWK (RFC 7517), for a
// store to keep with the tokens bound to it. It fails for a key whose
// private part stays where it lives (a KMS): such a key is the caller's to
// keep. The result is a secret, as the tokens are.
func (k *Key) MarshalPrivateJWK() ([]byte, error) {
	switch k.priv.(type) {
	case *ecdsa.PrivateKey, *rsa.PrivateKey, ed25519.PrivateKey:
	default:
		return nil, fmt.Errorf("dpop: %T cannot be exported", k.priv)
	}
	b, err := json.Marshal(jose.JSONWebKey{Key: k.priv, Algorithm: string(k.alg), Use: "sig"})
	if err != nil {
		return nil, fmt.Errorf("dpop: exporting key: %w", err)
	}
	return b, nil
}

// ParsePrivateJWK returns the Key of a private JWK written by
// [Key.MarshalPrivateJWK].
func ParsePrivateJWK(b []byte) (*Key, error) {
	var jwk jose.JSONWebKey
	if err := jwk.UnmarshalJSON(b); err != nil {
		return nil, fmt.Errorf("dpop: parsing key: %w", err)
	}
	s, ok := jwk.Key.(crypto.Signer)
	if !ok || jwk.IsPublic() {
		return nil, errors.New("dpop: the JWK is not a private signing key")
	}
	return NewKey(s)
}
