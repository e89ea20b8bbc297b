package stepup

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"

	"golang.org/x/oauth2"

	"github.com/stepup-go/stepup/dpop"
)

// Escalator obtains a new authorization when a token cannot be refreshed
// into what the resource server asks for: a first authorization, more
// scope, a stronger or more recent user authentication, or claims. It
// typically runs an authorization code flow with PKCE and asks the user to
// consent.
//
// The [TokenSource] runs one escalation at a time for its resource, so a
// person sees one consent prompt at a time, and concurrent requests that hit
// the same challenge share it. The [Grant] returned is installed in the
// source. Return an error that wraps [ErrDeclined] when the user or the
// authorization server refused (access_denied, RFC 9470
// unmet_authentication_requirements): the challenge is then not escalated
// again for a while. ctx keeps the values of the context of the request
// that started the escalation, but not its cancellation: see
// [Transport.EscalationTimeout].
//
// Make the Escalator's own requests (metadata, token endpoint) with a
// client of its own, not through a Transport of the same source: one
// escalation runs at a time for a resource, so a request of the escalation
// that drew a challenge would wait for the escalation itself.
type Escalator interface {
	Escalate(ctx context.Context, req *EscalationRequest) (*Grant, error)
}

// EscalatorFunc adapts a function to an [Escalator].
type EscalatorFunc func(ctx context.Context, req *EscalationRequest) (*Grant, error)

// Escalate calls f(ctx, req).
func (f EscalatorFunc) Escalate(ctx context.Context, req *EscalationRequest) (*Grant, error) {
	return f(ctx, req)
}

// Grant is what an [Escalator] obtained: a token and what the source needs
// to know about it.
type Grant struct {
	// Token is the new token, with an access token. Its Extra("scope"),
	// set by x/oauth2 from the token response's scope, is the granted
	// scope; when absent, the scope requested is taken as granted
	// (RFC 6749 §5.1).
	Token *oauth2.Token

	// Scopes is the scope the authorization request asked for. Nil means
	// [EscalationRequest.Scopes]; set it when the Escalator chose the
	// scope itself, as when the request named none and it took the
	// resource's scopes_supported (RFC 9728 §2).
	Scopes Scopes

	// Refresh, when not nil, is how the source refreshes this token and
	// its successors from now on: set it when the client that can redeem
	// the refresh token was only learnt during the escalation, as with
	// dynamic client registration (RFC 7591). Nil keeps the source's.
	Refresh RefreshFunc

	// Issuer is the issuer identifier (RFC 8414 §2) of the authorization
	// server that issued Token, when known.
	Issuer string
}

// Reason is what a challenge asks for, as stepup concluded from its error
// code and status: why an [Escalator] is asked for a new authorization, or
// why a [*ChallengeError] could not cure the challenge.
type Reason int

// The reasons, one per remedy of the behaviour table in the package
// documentation.
const (
	// ReasonAuthorizationRequired: a 401 to a request that carried no
	// token (RFC 6750 §3.1).
	ReasonAuthorizationRequired Reason = iota + 1
	// ReasonReauthorization: the token was rejected (invalid_token, or a
	// 401 without error code after a token was sent, RFC 6750 §3.1). It
	// is refreshed when it can be; an Escalator sees this reason when it
	// cannot: no refresh token, or the grant is gone (invalid_grant).
	ReasonReauthorization
	// ReasonInsufficientScope: insufficient_scope (RFC 6750 §3.1): the
	// token needs more scope, which only a new authorization can grant.
	ReasonInsufficientScope
	// ReasonUserAuthentication: insufficient_user_authentication
	// (RFC 9470): the user must authenticate again, per ACRValues and
	// MaxAge.
	ReasonUserAuthentication
	// ReasonClaims: insufficient_claims: the token must carry the Claims
	// of the challenge.
	ReasonClaims
	// ReasonDPoPNonce: use_dpop_nonce (RFC 9449 §9): the DPoP proof must
	// carry the resource server's nonce. Never escalated.
	ReasonDPoPNonce
)

// String returns the reason in words, e.g. "insufficient scope".
func (r Reason) String() string {
	switch r {
	case ReasonAuthorizationRequired:
		return "authorization required"
	case ReasonReauthorization:
		return "re-authorization"
	case ReasonInsufficientScope:
		return "insufficient scope"
	case ReasonUserAuthentication:
		return "user authentication"
	case ReasonClaims:
		return "claims"
	case ReasonDPoPNonce:
		return "DPoP nonce"
	}
	return "Reason(" + strconv.Itoa(int(r)) + ")"
}

// EscalationRequest is what an [Escalator] learns about the challenge it is
// asked to answer. It prints (fmt, log/slog) without the rejected token.
type EscalationRequest struct {
	// Reason says why a new authorization is needed.
	Reason Reason
	// Challenge is the challenge being answered. Its ResourceMetadata is
	// as received; use the validated EscalationRequest.ResourceMetadata.
	Challenge OAuthChallenge
	// Scopes is the scope to request: the scopes previously requested,
	// those granted and those challenged, without duplicates and in that
	// order, computed from the grant current when the escalation started
	// (MCP authorization, "Step-Up Authorization Flow"). It is empty when
	// nothing was requested, granted or challenged: the Escalator then
	// chooses, and says what it chose in [Grant.Scopes].
	Scopes Scopes
	// ChallengedScopes is the challenge's scope alone: what the resource
	// says the request needs.
	ChallengedScopes Scopes
	// ACRValues are the RFC 9470 acr_values, most preferred first.
	ACRValues []string
	// MaxAge is the RFC 9470 max_age in seconds, or [NoMaxAge].
	MaxAge int
	// Claims is the decoded JSON of an insufficient_claims challenge, to
	// send as the OpenID Connect claims request parameter.
	Claims json.RawMessage
	// Resource is the RFC 8707 resource to send in the authorization and
	// token requests: the [TokenSource]'s resource.
	Resource string
	// Issuer is the issuer (RFC 8414 §2) of the authorization server of
	// the current grant, from [Grant.Issuer] or [WithIssuer], or "" when
	// unknown: an Escalator that can reach several should prefer it, so
	// that a step-up stays with the server that granted what is held.
	Issuer string
	// ResourceMetadata is the challenge's resource_metadata URL (RFC 9728)
	// if it passed validation: http(s), https unless on a loopback host,
	// the resource's origin unless the Transport allows others, never a
	// link-local address. It is "" when absent or refused; discovery then
	// falls back to the well-known URI.
	ResourceMetadata string
	// RejectedToken is a copy of the token the resource server refused,
	// nil when the request carried none.
	RejectedToken *oauth2.Token
	// Request is a clone of the challenged request without body and
	// without Authorization header, for reading only.
	Request *http.Request
	// DPoP, when not nil, is the source's DPoP key and nonces ([WithDPoP]):
	// the Escalator sends its token requests with proofs of that key
	// (through [dpop.Config.Client]), and names its thumbprint as dpop_jkt
	// in the authorization request (RFC 9449 §10), so that the tokens it
	// obtains are bound to it.
	DPoP *dpop.Config
}

// String describes the request without the token.
func (r EscalationRequest) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "stepup.EscalationRequest{Reason: %s, Scopes: %q, ChallengedScopes: %q", r.Reason, r.Scopes.String(), r.ChallengedScopes.String())
	if len(r.ACRValues) > 0 {
		fmt.Fprintf(&b, ", ACRValues: %q", r.ACRValues)
	}
	if r.MaxAge != NoMaxAge {
		fmt.Fprintf(&b, ", MaxAge: %d", r.MaxAge)
	}
	if r.Claims != nil {
		fmt.Fprintf(&b, ", Claims: %s", r.Claims)
	}
	fmt.Fprintf(&b, ", Resource: %q, ResourceMetadata: %q", r.Resource, r.ResourceMetadata)
	if r.Issuer != "" {
		fmt.Fprintf(&b, ", Issuer: %q", r.Issuer)
	}
	if r.RejectedToken != nil {
		b.WriteString(", RejectedToken: [REDACTED]")
	}
	b.WriteByte('}')
	return b.String()
}

// GoString is String: %#v must not print the token either.
func (r EscalationRequest) GoString() string { return r.String() }

// LogValue describes the request for log/slog without the token.
func (r EscalationRequest) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("reason", r.Reason.String()),
		slog.String("scopes", r.Scopes.String()),
		slog.String("challenged_scopes", r.ChallengedScopes.String()),
		slog.String("resource", r.Resource),
		slog.String("resource_metadata", r.ResourceMetadata),
	)
}
