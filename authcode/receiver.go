package authcode

import (
	"context"
	"net/http"
	"net/url"
)

// Receiver carries an authorization request to the person who consents
// and brings the authorization response (RFC 6749 §4.1.2) back.
//
// Receive calls authorize once, with the redirect URI the response will be
// sent to; authorize registers the client if it must and returns the
// request to make. Receive then gets the request's URL to the person or
// sends it itself, waits under ctx for the response at the redirect URI,
// and returns the response's parameters (code, state, iss, or error,
// error_description, error_uri). It releases what it holds (a listener, a
// connection) before it returns, on every path. An error from authorize is
// returned as it is.
//
// A Receiver should refuse a response whose state is not the request's;
// the [Escalator] checks the state again, and the issuer, before it
// redeems the code.
type Receiver interface {
	Receive(ctx context.Context, authorize AuthorizeFunc) (url.Values, error)
}

// AuthorizeFunc prepares the authorization request for redirectURI; see
// [Receiver].
type AuthorizeFunc func(ctx context.Context, redirectURI string) (*AuthorizationRequest, error)

// AuthorizationRequest is an authorization request (RFC 6749 §4.1.1) ready
// to be made.
type AuthorizationRequest struct {
	// URL is the authorization endpoint's URL with the request's
	// parameters: where to send the person's browser.
	URL string
	// State is the request's state parameter: the response must carry it
	// back unchanged (RFC 6749 §10.12).
	State string
	// Client is an HTTP client held to the [Escalator]'s policy for the
	// authorization server (package discovery), for a Receiver that makes
	// the request itself, as [Headless] does.
	Client *http.Client
}
