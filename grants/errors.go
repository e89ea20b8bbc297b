package grants

import (
	"errors"
	"strconv"
	"strings"

	"github.com/stepup-go/stepup"
)

var (
	// ErrKeyType says that a [PrivateKeyJWT]'s key cannot sign with its
	// algorithm, or is of a kind the package does not sign with (it signs
	// with ECDSA P-256/P-384/P-521, RSA and Ed25519 keys).
	ErrKeyType = errors.New("grants: the private key does not fit the signing algorithm")

	// ErrGrantNotSupported says that the token endpoint answered
	// unsupported_grant_type (RFC 6749 §5.2): the authorization server
	// does not serve the grant, or not to this client.
	ErrGrantNotSupported = errors.New("grants: the authorization server does not support the grant type")

	// ErrNoSubjectToken says that the function supplying a token to
	// present (an ID token, a workload's token) returned none.
	ErrNoSubjectToken = errors.New("grants: no token to present")
)

// TokenError is an error response of a token endpoint (RFC 6749 §5.2), or
// an answer that is no token response at all (an HTML page, a 5xx). It
// carries the error code and description, never the response body: a
// server may echo what it was sent. A refusal of the request itself
// (invalid_scope, unauthorized_client, access_denied) wraps
// [stepup.ErrDeclined], so that the guard of a [stepup.TokenSource] does
// not ask again for the same challenge for a while, as after a person's
// refusal.
type TokenError struct {
	// Endpoint is the token endpoint's URL.
	Endpoint string
	// GrantType is the grant_type of the request.
	GrantType string
	// StatusCode is the HTTP status of the answer, 0 when the answer was
	// a 2xx that did not hold a usable token.
	StatusCode int
	// Code is the error parameter, e.g. invalid_client; "" when the
	// answer was not an error response.
	Code string
	// Description is the error_description, for developers, with any
	// credential the request carried replaced by [REDACTED].
	Description string
}

// Error returns the endpoint, the status and the error code and
// description, quoted: they come from the server.
func (e *TokenError) Error() string {
	var b strings.Builder
	b.WriteString("grants: token endpoint ")
	b.WriteString(e.Endpoint)
	if e.GrantType != "" {
		b.WriteString(" (grant " + e.GrantType + ")")
	}
	if e.StatusCode != 0 {
		b.WriteString(" answered " + strconv.Itoa(e.StatusCode))
	} else {
		b.WriteString(" answered")
	}
	if e.Code != "" {
		b.WriteString(" " + strconv.Quote(clip(e.Code)))
	}
	if e.Description != "" {
		b.WriteString(": " + strconv.Quote(clip(e.Description)))
	}
	return b.String()
}

// Unwrap returns [stepup.ErrDeclined] when the server refused what was
// asked (RFC 6749 §5.2: invalid_scope, unauthorized_client; access_denied,
// which some servers send from the token endpoint), both it and
// [ErrGrantNotSupported] for unsupported_grant_type, else nil. A rejected
// credential or assertion (invalid_client, invalid_grant) is not a
// refusal: a new assertion, or a rotated secret, may succeed.
func (e *TokenError) Unwrap() []error {
	switch e.Code {
	case "invalid_scope", "unauthorized_client", "access_denied":
		return []error{stepup.ErrDeclined}
	case "unsupported_grant_type":
		return []error{stepup.ErrDeclined, ErrGrantNotSupported}
	}
	return nil
}

// clip bounds what a server wrote, in an error message.
func clip(s string) string {
	const n = 200
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}
