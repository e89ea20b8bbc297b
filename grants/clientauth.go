package grants

import (
	"crypto"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/url"
	"slices"

	"golang.org/x/oauth2"

	"github.com/stepup-go/stepup/discovery"
)

// The token_endpoint_auth_method values (RFC 7591 §2) of the client
// authentications this package sends.
const (
	MethodBasic         = "client_secret_basic"
	MethodPost          = "client_secret_post"
	MethodPrivateKeyJWT = "private_key_jwt"
	MethodNone          = "none"
)

// ClientAuth is how a client authenticates at a token endpoint (RFC 6749
// §2.3): a [ClientSecret], a [PrivateKeyJWT] or a [PublicClient]. Its
// credentials never appear when it is printed or logged.
type ClientAuth interface {
	// ID returns the client_id.
	ID() string
	// credential returns what a request to as's token endpoint carries.
	credential(as *discovery.AuthServer) (*credential, error)
}

// credential is one token request's client authentication, in the terms
// of x/oauth2.
type credential struct {
	clientID string
	secret   string
	style    oauth2.AuthStyle
	params   url.Values // client_assertion and its type
	secrets  []string   // what must never be repeated back in an error
}

// ClientSecret authenticates with a shared secret, in the Authorization
// header (client_secret_basic) or in the request body
// (client_secret_post), RFC 6749 §2.3.1.
type ClientSecret struct {
	ClientID string
	Secret   string
	// Method is MethodBasic or MethodPost. "" takes the server's
	// token_endpoint_auth_methods_supported: client_secret_basic when
	// listed or when nothing is listed (its default, RFC 8414 §2), else
	// client_secret_post when listed.
	Method string
}

// ID returns c.ClientID.
func (c ClientSecret) ID() string { return c.ClientID }

func (c ClientSecret) credential(as *discovery.AuthServer) (*credential, error) {
	if c.ClientID == "" || c.Secret == "" {
		return nil, fmt.Errorf("grants: a ClientSecret needs a ClientID and a Secret")
	}
	method := c.Method
	if method == "" {
		method = MethodBasic
		if supported := as.TokenEndpointAuthMethodsSupported; len(supported) > 0 && !slices.Contains(supported, MethodBasic) {
			if !slices.Contains(supported, MethodPost) {
				return nil, fmt.Errorf("grants: %s accepts neither client_secret_basic nor client_secret_post (token_endpoint_auth_methods_supported %q)", as.Issuer, supported)
			}
			method = MethodPost
		}
	}
	cr := &credential{clientID: c.ClientID, secret: c.Secret, secrets: []string{c.Secret, url.QueryEscape(c.Secret)}}
	switch method {
	case MethodBasic:
		cr.style = oauth2.AuthStyleInHeader
	case MethodPost:
		cr.style = oauth2.AuthStyleInParams
	default:
		return nil, fmt.Errorf("grants: ClientSecret.Method %q is neither %s nor %s", method, MethodBasic, MethodPost)
	}
	return cr, nil
}

// String describes c without its secret.
func (c ClientSecret) String() string {
	return fmt.Sprintf("grants.ClientSecret{ClientID: %q, Secret: [REDACTED], Method: %q}", c.ClientID, c.Method)
}

// GoString is String: %#v must not print the secret either.
func (c ClientSecret) GoString() string { return c.String() }

// LogValue describes c for log/slog without its secret.
func (c ClientSecret) LogValue() slog.Value {
	return slog.GroupValue(slog.String("client_id", c.ClientID), slog.String("method", c.Method))
}

// MarshalJSON encodes c without its secret, as when a struct holding it
// is logged as JSON.
func (c ClientSecret) MarshalJSON() ([]byte, error) {
	return json.Marshal(map[string]string{"client_id": c.ClientID, "secret": "[REDACTED]", "method": c.Method})
}

// PrivateKeyJWT authenticates with a JWT signed by the client's private
// key (private_key_jwt, RFC 7523 §2.2 and §3, OpenID Connect Core 1.0
// §9): a new one, with a new jti, for every token request.
type PrivateKeyJWT struct {
	ClientID string
	// Key signs the assertions: an *ecdsa.PrivateKey (P-256, P-384,
	// P-521), an *rsa.PrivateKey of 2048 bits or more, or an
	// ed25519.PrivateKey. See [ParsePrivateKeyPEM].
	Key crypto.Signer
	// Algorithm is the JWS alg (RFC 7518 §3.1), e.g. "ES256". "" takes
	// the key's: ES256, ES384 or ES512 by curve, RS256, EdDSA.
	Algorithm string
	// KeyID, when set, is the kid header: which of the client's
	// registered keys signed (RFC 7515 §4.1.4).
	KeyID string
	// AudienceTokenEndpoint makes the assertion's aud the token
	// endpoint's URL rather than the issuer identifier, for servers that
	// want it so (RFC 7523 §3 allows either; Ory Hydra requires the token
	// endpoint). The default, the issuer, is what the MCP OAuth client
	// credentials extension asks for: it names the server whatever URL
	// the request goes to.
	AudienceTokenEndpoint bool
}

// ID returns k.ClientID.
func (k PrivateKeyJWT) ID() string { return k.ClientID }

func (k PrivateKeyJWT) credential(as *discovery.AuthServer) (*credential, error) {
	if k.ClientID == "" {
		return nil, fmt.Errorf("grants: a PrivateKeyJWT needs a ClientID")
	}
	aud := as.Issuer
	if k.AudienceTokenEndpoint {
		aud = as.TokenEndpoint
	}
	assertion, err := clientAssertion(k, aud)
	if err != nil {
		return nil, err
	}
	return &credential{
		clientID: k.ClientID,
		style:    oauth2.AuthStyleInParams,
		params: url.Values{
			"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"},
			"client_assertion":      {assertion},
		},
		secrets: []string{assertion},
	}, nil
}

// String describes k without its key.
func (k PrivateKeyJWT) String() string {
	return fmt.Sprintf("grants.PrivateKeyJWT{ClientID: %q, Key: [REDACTED], Algorithm: %q, KeyID: %q}", k.ClientID, k.Algorithm, k.KeyID)
}

// GoString is String: %#v must not print the key either.
func (k PrivateKeyJWT) GoString() string { return k.String() }

// LogValue describes k for log/slog without its key.
func (k PrivateKeyJWT) LogValue() slog.Value {
	return slog.GroupValue(slog.String("client_id", k.ClientID), slog.String("alg", k.Algorithm), slog.String("kid", k.KeyID))
}

// MarshalJSON encodes k without its key, as when a struct holding it is
// logged as JSON.
func (k PrivateKeyJWT) MarshalJSON() ([]byte, error) {
	return json.Marshal(map[string]string{"client_id": k.ClientID, "key": "[REDACTED]", "alg": k.Algorithm, "kid": k.KeyID})
}

// PublicClient identifies the client by its client_id alone, with no
// authentication (token_endpoint_auth_method none, RFC 7591 §2): for a
// grant whose assertion is what the server trusts, such as a workload's
// token.
type PublicClient struct {
	ClientID string
}

// ID returns p.ClientID.
func (p PublicClient) ID() string { return p.ClientID }

func (p PublicClient) credential(*discovery.AuthServer) (*credential, error) {
	return &credential{clientID: p.ClientID, style: oauth2.AuthStyleInParams}, nil
}
