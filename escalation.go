package stepup

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

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
// [WithEscalationTimeout].
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

// How the source runs escalations: one at a time for the resource, shared
// by the requests that draw the same challenge.

// escalation is the one escalation a source runs at a time.
type escalation struct {
	key      challengeKey
	grantSeq uint64        // the grant it started from
	timeout  time.Duration // the source's escalation timeout when it started
	done     chan struct{}
	// Set before done is closed: the outcome, and whether the grant was
	// installed. A grant is not installed when a newer one arrived while
	// the Escalator ran.
	err       error
	installed bool
}

// escalationCall is what a Transport asks of the source: a new
// authorization for the challenge key drawn by a request that carried
// generation sent.
type escalationCall struct {
	t    *Transport // whose Logger hears of the escalation
	key  challengeKey
	sent uint64
	// req is what the Escalator gets; the source fills in Scopes when the
	// escalation starts, from the grant then current.
	req *EscalationRequest
}

// curedBy reports whether a grant newer than the one the request carried,
// with the granted scopes, may cure the challenge: replaying with it costs
// one request, asking again costs a person's time. Only a scope challenge
// says what it needs; for any other, a newer token is worth a try.
func (c *escalationCall) curedBy(granted Scopes) bool {
	if c.req.Reason == ReasonInsufficientScope && len(c.req.ChallengedScopes) > 0 {
		return granted.ContainsAll(c.req.ChallengedScopes)
	}
	return true
}

// escalate obtains a grant that answers call's challenge. It returns
// escalated false and no error when a newer token may cure the challenge
// already, or arrived while the Escalator ran: replay with it. Otherwise
// it runs the Escalator, or waits for the escalation under way: when that
// one is for the same challenge, its outcome is the caller's too; when it
// is for another one, the caller looks again once it ends, since the new
// grant may cure its challenge, and starts an escalation of its own, for
// the union of the scopes of the new grant and its challenge, only if not.
// So a person sees one prompt at a time, and never one for scopes already
// granted.
//
// It fails with ctx's error if ctx ends first, or with the guard's or the
// escalation's error.
func (s *TokenSource) escalate(ctx context.Context, call *escalationCall) (escalated bool, err error) {
	for {
		if err := ctx.Err(); err != nil {
			return false, err // never start what nobody waits for
		}
		f, start, err := s.joinEscalation(call)
		if err != nil || f == nil {
			return false, err
		}
		if start {
			go s.runEscalation(ctx, f, call)
		} else {
			call.t.event(ctx, slog.LevelDebug, "stepup: waiting for an escalation in progress", slog.String("url", redactedURL(call.req.Request)))
		}
		select {
		case <-f.done:
		case <-ctx.Done():
			return false, ctx.Err()
		}
		if f.key == call.key {
			return f.installed, f.err
		}
	}
}

// joinEscalation returns the escalation to wait for, and whether the caller
// must start it, or nil when a newer token may cure the challenge, or the
// guard's reason to stop.
func (s *TokenSource) joinEscalation(call *escalationCall) (*escalation, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if cur := s.snap.Load(); cur.gen != call.sent && cur.tok != nil && call.curedBy(s.granted) {
		return nil, false, nil
	}
	if f := s.escalated; f != nil {
		return f, false, nil
	}
	accepted := call.sent != 0 && s.accepted.Load() >= call.sent
	if err := s.guard.blocked(call.key, call.sent, accepted, s.granted.sortedKey(), time.Now(), s.exhaustedTTL); err != nil {
		return nil, false, err
	}
	call.req.Scopes = s.requested.Union(s.granted, call.req.ChallengedScopes)
	call.req.Issuer = s.issuer
	f := &escalation{key: call.key, grantSeq: s.grantSeq, timeout: s.escalationTimeout, done: make(chan struct{})}
	s.escalated = f
	return f, true, nil
}

// runEscalation runs the escalation f on a goroutine of its own, with the
// values of the starting caller's context but not its cancellation, as
// [WithEscalationTimeout] says. The flight
// is ended in a deferred call: a panic outside the Escalator (in a Logger,
// say) becomes an error, and a runtime.Goexit in the Escalator, which skips
// the rest, ends it with errFlightExited.
func (s *TokenSource) runEscalation(parent context.Context, f *escalation, call *escalationCall) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(parent), f.timeout)
	err := errFlightExited // unless escalateOnce returns
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("stepup: panic: %v", r)
		}
		cancel()
		s.endEscalation(ctx, f, call, err)
	}()
	err = s.escalateOnce(ctx, f, call)
}

// escalateOnce calls the Escalator and installs its grant. With a store,
// it runs alone across everyone sharing it, and takes the grant saved there
// instead when another source got one that may cure the challenge.
func (s *TokenSource) escalateOnce(ctx context.Context, f *escalation, call *escalationCall) error {
	return s.exclusive(ctx, func(ctx context.Context, saved *SavedGrant) (*SavedGrant, error) {
		if usable(saved) && saved.Token.Valid() && call.curedBy(saved.Granted) && s.adoptSaved(saved, call.req.RejectedToken) {
			f.installed = true
			return nil, nil
		}
		call.t.event(ctx, slog.LevelInfo, "stepup: escalation start", slog.Any("request", call.req))
		g, err := callEscalator(ctx, s.escalator, call.req)
		if err != nil {
			return nil, err
		}
		if g == nil || g.Token == nil || g.Token.AccessToken == "" {
			return nil, errors.New("the Escalator returned no access token")
		}
		return s.installGrant(f, call, g), nil
	})
}

// installGrant installs the grant g of the escalation f and returns what the
// store keeps of it, or nil when a newer grant arrived while the Escalator
// ran (Set, say): an escalation never replaces a grant it did not see, and
// its waiters replay with that one.
func (s *TokenSource) installGrant(f *escalation, call *escalationCall, g *Grant) *SavedGrant {
	requested := call.req.Scopes
	if g.Scopes != nil {
		requested = g.Scopes
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.grantSeq != f.grantSeq {
		return nil
	}
	if g.Refresh != nil {
		s.refresh, s.goneGen = g.Refresh, 0
	}
	if g.Issuer != "" {
		s.issuer = g.Issuer
	}
	gen := s.installLocked(g.Token, requested, true)
	s.guard.escalated(f.key, gen, s.granted.sortedKey(), time.Now())
	f.installed = true
	return s.savedLocked()
}

// endEscalation ends the escalation f with err and tells its waiters.
func (s *TokenSource) endEscalation(ctx context.Context, f *escalation, call *escalationCall, err error) {
	if err != nil && ctx.Err() != nil && errors.Is(err, ctx.Err()) {
		err = fmt.Errorf("stepup: escalation timed out after %v: %w", f.timeout, err)
	}
	s.mu.Lock()
	if errors.Is(err, ErrDeclined) {
		s.guard.declined(f.key, s.granted.sortedKey(), time.Now())
	}
	granted := s.granted.String()
	s.escalated = nil
	f.err = err
	close(f.done)
	s.mu.Unlock()

	attrs := []slog.Attr{slog.String("reason", call.req.Reason.String())}
	switch {
	case err == nil && !f.installed:
		attrs = append(attrs, slog.String("outcome", "dropped: a newer grant was installed meanwhile"))
	case err == nil:
		attrs = append(attrs, slog.String("outcome", "ok"), slog.String("granted", granted))
	case errors.Is(err, ErrDeclined):
		attrs = append(attrs, slog.String("outcome", "declined"), slog.String("error", redact(err.Error(), call.req.RejectedToken)))
	default:
		attrs = append(attrs, slog.String("outcome", "failed"), slog.String("error", redact(err.Error(), call.req.RejectedToken)))
	}
	call.t.event(ctx, slog.LevelInfo, "stepup: escalation end", attrs...)
}

// callEscalator calls e, turning a panic into an error.
func callEscalator(ctx context.Context, e Escalator, er *EscalationRequest) (g *Grant, err error) {
	defer func() {
		if r := recover(); r != nil {
			g, err = nil, fmt.Errorf("the Escalator panicked: %v", r)
		}
	}()
	return e.Escalate(ctx, er)
}

// The Transport's side: what a request whose challenge needs a new
// authorization asks of the source.

// escalate asks the source for a new authorization, run by the source's
// Escalator unless an escalation for the same challenge is under way.
func (rt *roundTrip) escalate(ctx context.Context, c *challenge, s *snapshot) error {
	if rt.ts.escalator == nil {
		return nil // let through for a newer token only: replay with it
	}
	call := &escalationCall{t: rt.t, key: c.key, sent: s.gen, req: rt.escalationRequest(ctx, c, s)}
	escalated, err := rt.ts.escalate(ctx, call)
	if err != nil {
		return err
	}
	if escalated {
		rt.remedies = append(rt.remedies, remedy{key: c.key, action: c.action, escalated: true})
	} else {
		rt.t.event(ctx, slog.LevelDebug, "stepup: replaying with a newer token", c.attrs(rt.where())...)
	}
	return nil
}

// escalationRequest builds what the Escalator sees, but for the scopes,
// which the source fills in when the escalation starts.
func (rt *roundTrip) escalationRequest(ctx context.Context, c *challenge, s *snapshot) *EscalationRequest {
	oc := &c.oauth
	meta, why := validateResourceMetadata(oc.ResourceMetadata, rt.ts.origin, rt.t.AllowCrossOriginMetadata)
	if why != "" {
		rt.t.event(ctx, slog.LevelWarn, "stepup: resource_metadata refused", append(c.attrs(rt.where()), slog.String("why", why))...)
	}
	r := rt.req.Clone(ctx)
	r.Body, r.GetBody = nil, nil
	r.Header.Del("Authorization")
	var rejected *oauth2.Token
	if s.tok != nil {
		cp := *s.tok
		rejected = &cp
	}
	return &EscalationRequest{
		Reason:           c.reason,
		Challenge:        *oc,
		ChallengedScopes: oc.Scope,
		ACRValues:        oc.ACRValues,
		MaxAge:           oc.MaxAge,
		Claims:           oc.Claims,
		Resource:         rt.ts.resource,
		ResourceMetadata: meta,
		RejectedToken:    rejected,
		Request:          r,
		DPoP:             rt.ts.dpopConfig(),
	}
}
