package authcode

import (
	"errors"
	"fmt"
	"strconv"

	"github.com/stepup-go/stepup"
)

var (
	// ErrStateMismatch says that an authorization response did not carry
	// the state of the request (RFC 6749 §10.12): it may be forged.
	ErrStateMismatch = errors.New("authcode: authorization response state does not match the request's")
	// ErrIssuerMismatch says that an authorization response's iss is not
	// the issuer the request went to, or is missing though the server's
	// metadata promises it (RFC 9207 §2.4): a mix-up attack, or a broken
	// server. The code is not redeemed.
	ErrIssuerMismatch = errors.New("authcode: authorization response iss does not match the authorization server (RFC 9207)")
	// ErrNoPKCE says that the authorization server's metadata does not
	// list S256 in code_challenge_methods_supported: it cannot protect the
	// code (RFC 7636), and MCP forbids going on.
	ErrNoPKCE = errors.New("authcode: authorization server does not support PKCE S256")
	// ErrNoClient says that there is no way to identify the client at the
	// authorization server: no pre-registered client for it, no client ID
	// metadata document it accepts, no registration endpoint.
	ErrNoClient = errors.New("authcode: no client registration for the authorization server")
)

// AuthorizationError is an error response of the authorization endpoint
// (RFC 6749 §4.1.2.1). access_denied, and RFC 9470's
// unmet_authentication_requirements, say that the person or the server
// refused: the error then wraps [stepup.ErrDeclined].
//
// The same error comes from a pushed authorization request (RFC 9126
// §2.3) that the server refused, with the HTTP status of its answer:
// then no browser was opened.
type AuthorizationError struct {
	// StatusCode is the HTTP status of the pushed authorization request
	// endpoint's answer, 0 for an error in an authorization response.
	StatusCode int
	// Code is the error parameter, e.g. access_denied.
	Code string
	// Description is the error_description parameter, for developers.
	Description string
	// URI is the error_uri parameter.
	URI string
}

// Error returns the code and description, quoted: they come from the
// server.
func (e *AuthorizationError) Error() string {
	msg := "authcode: authorization server answered " + strconv.Quote(clip(e.Code))
	if e.StatusCode != 0 {
		msg = fmt.Sprintf("authcode: pushed authorization request answered %d", e.StatusCode)
		if e.Code != "" {
			msg += " " + strconv.Quote(clip(e.Code))
		}
	}
	if e.Description != "" {
		msg += ": " + strconv.Quote(clip(e.Description))
	}
	return msg
}

// Unwrap returns [stepup.ErrDeclined] for a refusal, else nil.
func (e *AuthorizationError) Unwrap() error {
	switch e.Code {
	case "access_denied", "unmet_authentication_requirements":
		return stepup.ErrDeclined
	}
	return nil
}

// RegistrationError is an error response of a client registration endpoint
// (RFC 7591 §3.2.2), or an answer that is not a registration.
type RegistrationError struct {
	// StatusCode is the HTTP status of the answer.
	StatusCode int
	// Code is the error parameter, e.g. invalid_redirect_uri; "" when the
	// answer had none.
	Code string
	// Description is the error_description parameter.
	Description string
}

// Error returns the status, code and description, quoted: they come from
// the server.
func (e *RegistrationError) Error() string {
	msg := fmt.Sprintf("authcode: client registration answered %d", e.StatusCode)
	if e.Code != "" {
		msg += " " + strconv.Quote(clip(e.Code))
	}
	if e.Description != "" {
		msg += ": " + strconv.Quote(clip(e.Description))
	}
	return msg
}

// clip bounds a server's text in an error message.
func clip(s string) string {
	const n = 200
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}
