package stepup

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-retryablehttp"
	"golang.org/x/oauth2"
)

// Scopes is a set of OAuth scope values (RFC 6749 §3.3) that keeps the order
// in which its members were first added, so that the scope parameters stepup
// builds are stable. Scope values are case-sensitive; order carries no
// meaning: compare with [Scopes.Equal].
type Scopes []string

// ParseScopes parses a space-delimited scope string (RFC 6749 §3.3),
// dropping duplicates and tolerating repeated, leading or trailing spaces. A
// scope value with a byte outside %x21 / %x23-5B / %x5D-7E is an error
// (R-6750-6): no scope guessed from such a value is ever requested.
func ParseScopes(s string) (Scopes, error) {
	var out Scopes
	for _, v := range strings.Split(s, " ") {
		if v == "" {
			continue
		}
		for i := 0; i < len(v); i++ {
			if !isScopeChar(v[i]) {
				return nil, &ParamError{Param: "scope", Reason: "character outside RFC 6749 §3.3 set"}
			}
		}
		if !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	return out, nil
}

// isScopeChar: %x21 / %x23-5B / %x5D-7E.
func isScopeChar(c byte) bool { return c >= 0x21 && c <= 0x7e && c != '"' && c != '\\' }

// String returns the scopes space-delimited, in order, as a scope parameter.
func (s Scopes) String() string { return strings.Join(s, " ") }

// Contains reports whether scope is in the set.
func (s Scopes) Contains(scope string) bool { return slices.Contains(s, scope) }

// ContainsAll reports whether every member of other is in s.
func (s Scopes) ContainsAll(other Scopes) bool {
	for _, v := range other {
		if !s.Contains(v) {
			return false
		}
	}
	return true
}

// Equal reports whether s and other hold the same scopes, in any order.
func (s Scopes) Equal(other Scopes) bool {
	return len(s) == len(other) && s.ContainsAll(other) && other.ContainsAll(s)
}

// Union returns a new set with the members of s followed by those of each of
// sets not already present, in order. Neither s nor sets are modified.
func (s Scopes) Union(sets ...Scopes) Scopes {
	n := len(s)
	for _, o := range sets {
		n += len(o)
	}
	out := make(Scopes, 0, n)
	for _, v := range s {
		if !out.Contains(v) {
			out = append(out, v)
		}
	}
	for _, o := range sets {
		for _, v := range o {
			if !out.Contains(v) {
				out = append(out, v)
			}
		}
	}
	return out
}

// sortedKey returns the set's members sorted and space-joined: the same
// string for every order of the same set.
func (s Scopes) sortedKey() string {
	c := slices.Clone(s)
	slices.Sort(c)
	c = slices.Compact(c)
	return strings.Join(c, " ")
}

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

// Reason says why an [Escalator] is asked for a new authorization.
type Reason int

// The reasons of an [EscalationRequest], one per row of the behaviour table.
const (
	// ReasonAuthorizationRequired: a 401 to a request that carried no
	// token (RFC 6750 §3.1, R-6750-10).
	ReasonAuthorizationRequired Reason = iota + 1
	// ReasonReauthorization: the token was rejected (invalid_token) and
	// could not be refreshed.
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
	// order (R-MCP-4).
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
	// ResourceMetadata is the challenge's resource_metadata URL (RFC 9728)
	// if it passed validation: http(s), https unless on a loopback host,
	// the resource's origin unless the Transport allows others, never a
	// link-local address. It is "" when absent or refused; discovery then
	// falls back to the well-known URI.
	ResourceMetadata string
	// RejectedToken is the token the resource server refused, nil when the
	// request carried none.
	RejectedToken *oauth2.Token
	// Request is a clone of the challenged request without body and
	// without Authorization header, for reading only.
	Request *http.Request
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

// ErrDeclined says that the user or the authorization server refused an
// escalation. Return an error wrapping it from an [Escalator];
// [errors.Is](err, ErrDeclined) then holds for the [*EscalationError] the
// [Transport] returns.
var ErrDeclined = errors.New("stepup: authorization declined")

// EscalationError is the error a [Transport] returns when the remedy for a
// challenge failed: the [Escalator] returned an error or a bad token,
// panicked, or ended its goroutine with runtime.Goexit. It wraps the cause,
// so [errors.Is](err, [ErrDeclined]) tells a refusal from a failure. Its
// message never contains a token, and [CheckRetry] never retries it.
type EscalationError struct {
	// Reason is why the escalation was needed.
	Reason Reason
	// Challenge is the challenge that was being answered.
	Challenge OAuthChallenge
	// Status is the status code of the challenged response.
	Status int

	msg string // the cause's message with tokens redacted
	err error
}

// Error says why which escalation failed, with the cause's message
// stripped of tokens.
func (e *EscalationError) Error() string {
	code := e.Challenge.Error
	if code == "" {
		code = "challenge"
	}
	return fmt.Sprintf("stepup: %s escalation after %d %s: %s", e.Reason, e.Status, code, e.msg)
}

// GoString keeps %#v from printing the cause, whose text may hold a token.
func (e *EscalationError) GoString() string {
	return fmt.Sprintf("&stepup.EscalationError{Reason: %s, Status: %d, Error: %q, Scope: %q, Cause: %q}",
		e.Reason, e.Status, e.Challenge.Error, e.Challenge.Scope.String(), e.msg)
}

// Unwrap returns the cause.
func (e *EscalationError) Unwrap() error { return e.err }

// Declined reports whether the user or the authorization server refused.
func (e *EscalationError) Declined() bool { return errors.Is(e.err, ErrDeclined) }

// redactedError carries an error whose message had tokens removed.
type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }

// redactError returns err with the access and refresh tokens of toks cut out
// of its message: causes such as a token endpoint's response body are not
// ours to trust.
func redactError(err error, toks ...*oauth2.Token) error {
	msg := redact(err.Error(), toks...)
	if msg == err.Error() {
		return err
	}
	return &redactedError{msg: msg, err: err}
}

func redact(msg string, toks ...*oauth2.Token) string {
	for _, t := range toks {
		if t == nil {
			continue
		}
		for _, secret := range [...]string{t.AccessToken, t.RefreshToken} {
			if secret != "" {
				msg = strings.ReplaceAll(msg, secret, "[REDACTED]")
			}
		}
	}
	return msg
}

// CheckRetry wraps a go-retryablehttp retry policy (nil means
// [retryablehttp.DefaultRetryPolicy]) so that a failed or declined
// escalation is never retried: each retry would ask the user again. Other
// outcomes are left to next.
func CheckRetry(next retryablehttp.CheckRetry) retryablehttp.CheckRetry {
	if next == nil {
		next = retryablehttp.DefaultRetryPolicy
	}
	return func(ctx context.Context, resp *http.Response, err error) (bool, error) {
		var e *EscalationError
		if errors.As(err, &e) {
			return false, err
		}
		return next(ctx, resp, err)
	}
}

// challengeKey identifies a challenge for the guard: the same demand from the
// same resource has the same key whatever the header's text, parameter order,
// case of names or error_description (DESIGN §3).
type challengeKey struct {
	origin string
	scheme string // lower case
	code   string // the challenge's own error code, "" when it has none
	scope  string // sorted scope set
	acr    string
	maxAge int
	claims [sha256.Size]byte
}

// newChallengeKey returns the key of oc, a challenge of the resource at
// origin. It depends on the response alone, never on the request: the
// code the Transport acts on for a challenge without error depends on
// whether a token was sent, so keyed by that, the same bare 401 would look
// new once the remedy had supplied a token, and be remedied again.
func newChallengeKey(origin string, oc *OAuthChallenge) challengeKey {
	k := challengeKey{
		origin: origin,
		scheme: strings.ToLower(oc.Scheme),
		code:   oc.Error,
		scope:  oc.Scope.sortedKey(),
		acr:    strings.Join(oc.ACRValues, " "),
		maxAge: oc.MaxAge,
	}
	if oc.Claims != nil {
		k.claims = sha256.Sum256(oc.Claims)
	}
	return k
}

// memo is what the guard remembers about a challenge across requests.
type memo struct {
	gen      uint64    // generation the last successful escalation produced
	granted  string    // granted scopes when the entry was made (sorted)
	at       time.Time // when the entry was made
	declined bool      // the user refused
	spent    bool      // the challenge came back after its escalation
}

// maxMemos bounds the guard's memory, which a server sending ever-new
// challenges could otherwise grow.
const maxMemos = 256

// guard remembers escalations across requests (DESIGN §3): a challenge that
// came straight back after its escalation, and a declined one, are not
// escalated again until the granted scopes change or ttl passes.
type guard struct {
	mu    sync.Mutex
	memos map[challengeKey]memo
}

// blocked reports why key must not be escalated for a request that carried
// generation sent while granted are the granted scopes, or "".
func (g *guard) blocked(key challengeKey, sent uint64, granted string, now time.Time, ttl time.Duration) string {
	g.mu.Lock()
	defer g.mu.Unlock()
	m, ok := g.memos[key]
	if !ok {
		return ""
	}
	if now.Sub(m.at) > ttl {
		delete(g.memos, key)
		return ""
	}
	switch {
	case m.gen != 0 && m.gen == sent:
		// The token this challenge's escalation produced drew the same
		// challenge: escalating again cannot help.
		m.spent, m.granted = true, granted
		g.memos[key] = m
		return "challenge came back after its escalation"
	case m.granted != granted:
		return ""
	case m.declined:
		return "escalation was declined"
	case m.spent:
		return "challenge came back after its escalation"
	}
	return ""
}

// escalated records that key's escalation produced generation gen.
func (g *guard) escalated(key challengeKey, gen uint64, granted string, now time.Time) {
	g.put(key, memo{gen: gen, granted: granted, at: now})
}

// declined records that key's escalation was refused.
func (g *guard) declined(key challengeKey, granted string, now time.Time) {
	g.put(key, memo{granted: granted, at: now, declined: true})
}

// spent records that key came back right after its escalation.
func (g *guard) spent(key challengeKey, granted string, now time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	m := g.memos[key]
	m.spent, m.granted, m.at = true, granted, now
	g.putLocked(key, m)
}

func (g *guard) put(key challengeKey, m memo) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.putLocked(key, m)
}

func (g *guard) putLocked(key challengeKey, m memo) {
	if g.memos == nil {
		g.memos = make(map[challengeKey]memo)
	}
	if _, ok := g.memos[key]; !ok && len(g.memos) >= maxMemos {
		g.evictLocked()
	}
	g.memos[key] = m
}

// evictLocked drops the oldest entry.
func (g *guard) evictLocked() {
	var oldest challengeKey
	var first time.Time
	for k, m := range g.memos {
		if first.IsZero() || m.at.Before(first) {
			oldest, first = k, m.at
		}
	}
	delete(g.memos, oldest)
}

// flightGroup runs one function at a time per key for all the goroutines
// asking for it, like golang.org/x/sync/singleflight, except that each
// caller waits with its own context and the function's context ends only
// when no caller waits any more: a cancelled first caller hands the work
// over to those still waiting instead of failing them.
type flightGroup[K comparable] struct {
	// detachedFor, when positive, lets a flight nobody waits for any more
	// run on for up to that long instead of stopping it, and makes new
	// callers join it meanwhile. A refresh needs this: abandoned after the
	// server rotated the refresh token, it would lose the new one, and a
	// second refresh started beside it would reuse the old one.
	detachedFor time.Duration

	mu      sync.Mutex
	flights map[K]*flight
}

type flight struct {
	done    chan struct{}
	err     error // set before done is closed
	waiters int   // guarded by the group's mu
	cancel  context.CancelFunc
}

// do runs the function start returns once for the concurrent callers with
// key and returns its error, or ctx's error if ctx ends first. Only the
// caller that starts the flight calls start, on its own goroutine, so start
// may read what only that caller may touch (its request). The function runs
// on a goroutine of its own with a context that keeps the values of that
// caller's ctx; a panic in it, or a runtime.Goexit, becomes an error. A
// caller that joins a flight already under way calls joined, if not nil,
// once it is counted as waiting.
func (g *flightGroup[K]) do(ctx context.Context, key K, start func() func(context.Context) error, joined func()) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	g.mu.Lock()
	f, ok := g.flights[key]
	if !ok {
		fn := start()
		fctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		if g.detachedFor > 0 {
			fctx, cancel = context.WithTimeout(context.WithoutCancel(ctx), g.detachedFor)
		}
		f = &flight{done: make(chan struct{}), cancel: cancel}
		if g.flights == nil {
			g.flights = make(map[K]*flight)
		}
		g.flights[key] = f
		go g.run(fctx, key, f, fn)
	}
	f.waiters++
	g.mu.Unlock()
	if ok && joined != nil {
		joined()
	}

	select {
	case <-f.done:
		return f.err
	case <-ctx.Done():
		g.mu.Lock()
		defer g.mu.Unlock()
		if f.waiters--; f.waiters == 0 && g.detachedFor <= 0 {
			// Nobody waits: stop the work, and let the next caller
			// start afresh rather than join a dying flight.
			f.cancel()
			if g.flights[key] == f {
				delete(g.flights, key)
			}
		}
		return ctx.Err()
	}
}

// errFlightExited is the error of a flight whose function never returned:
// it ended its goroutine with runtime.Goexit, as t.FailNow does.
var errFlightExited = errors.New("stepup: the remedy ended its goroutine without returning (runtime.Goexit)")

// run calls fn and ends the flight f with its result. fn runs user code on
// a goroutine of ours, so the flight is ended in a deferred call: a panic,
// which would take the program down, becomes an error, and a
// runtime.Goexit, which skips the rest of run, ends it with
// errFlightExited; either way the callers waiting for f are released.
func (g *flightGroup[K]) run(ctx context.Context, key K, f *flight, fn func(context.Context) error) {
	err := errFlightExited // unless fn returns
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("stepup: panic: %v", r)
		}
		f.cancel()
		g.mu.Lock()
		defer g.mu.Unlock()
		if g.flights[key] == f {
			delete(g.flights, key)
		}
		f.err = err
		close(f.done)
	}()
	err = fn(ctx)
}

// validateResourceMetadata returns raw if an Escalator may be given it as a
// resource_metadata URL for a resource at res (RFC 9728 §7.7, R-9728-10,
// R-MCP-22), or "" and the reason it was refused.
func validateResourceMetadata(raw string, res origin, allowCrossOrigin bool) (string, string) {
	if raw == "" {
		return "", ""
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "", "not a URL"
	}
	o, ok := originOf(u)
	switch {
	case !ok:
		return "", "not an absolute http(s) URL"
	case u.User != nil:
		return "", "carries user information"
	case u.Fragment != "":
		return "", "has a fragment"
	case o.scheme == "http" && !isLoopbackHost(o.host):
		return "", "plain http to a host other than loopback"
	case o == res:
		return raw, ""
	case !allowCrossOrigin:
		return "", "origin differs from the resource's"
	}
	host := strings.TrimSuffix(o.host, ".") // an absolute name is the same host
	if a, err := netip.ParseAddr(host); err == nil {
		a = a.Unmap()
		if a.IsLinkLocalUnicast() || a.IsLinkLocalMulticast() || a.IsUnspecified() || a.IsMulticast() {
			return "", "link-local or special address"
		}
		if (a.IsPrivate() || a.IsLoopback()) && !isInternalHost(res.host) {
			return "", "private address for a public resource"
		}
	} else if endsInNumber(host) {
		return "", "numeric host that is not an IP address in standard form"
	} else if isLoopbackHost(host) && !isInternalHost(res.host) {
		return "", "loopback host for a public resource"
	}
	return raw, ""
}

// endsInNumber reports whether the last DNS label of host is all digits or
// 0x and hex digits: WHATWG URL's "ends in a number" test. Such a host is
// no DNS name but an IPv4 address in one of inet_aton's shorthands
// (0xa9fea9fe, 2852039166, 169.254.43518, 0251.0376.0251.0376, 127.1, 0),
// which the cgo resolver, curl and browsers turn into an address that the
// checks on addresses never saw; none of them is worth decoding.
func endsInNumber(host string) bool {
	last := host[strings.LastIndexByte(host, '.')+1:]
	if len(last) >= 2 && last[0] == '0' && (last[1] == 'x' || last[1] == 'X') {
		return strings.Trim(last[2:], "0123456789abcdefABCDEF") == ""
	}
	return last != "" && strings.Trim(last, "0123456789") == ""
}

// isInternalHost reports whether host is a loopback name or a loopback or
// private address: a resource there may point at metadata next to it.
func isInternalHost(host string) bool {
	if isLoopbackHost(host) {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.Unmap().IsPrivate()
}
