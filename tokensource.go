package stepup

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/stepup-go/stepup/internal/netguard"
	"github.com/stepup-go/stepup/internal/weborigin"
	"golang.org/x/oauth2"

	"github.com/stepup-go/stepup/dpop"
)

// TokenSourceOption configures a [TokenSource] made by [NewTokenSource].
type TokenSourceOption func(*TokenSource)

// WithOAuth2Config makes the source refresh tokens through c, with
// [RefreshWithConfig]. Unless [WithScopes] says otherwise, the scopes
// requested are c.Scopes. A nil c leaves the source without refresh.
func WithOAuth2Config(c *oauth2.Config) TokenSourceOption {
	return func(s *TokenSource) {
		if c == nil {
			s.refresh = nil
			return
		}
		s.refresh = RefreshWithConfig(c)
		if s.requested == nil && len(c.Scopes) > 0 {
			s.requested = Scopes(nil).Union(c.Scopes)
		}
	}
}

// WithRefreshFunc makes the source refresh tokens with f.
func WithRefreshFunc(f RefreshFunc) TokenSourceOption {
	return func(s *TokenSource) { s.refresh = f }
}

// WithStore keeps the source's grant in st, so that it outlives the process
// and is shared with every source of the same resource (and issuer, see
// [WithIssuer]) using st: each refresh and each escalation runs inside
// [Store.Update], alone across all of them, and a source that finds a newer
// grant saved there takes it instead of refreshing or asking the user. The
// source loads the saved grant on first use; the token given to
// [NewTokenSource] is used only when st holds none.
func WithStore(st Store) TokenSourceOption {
	return func(s *TokenSource) { s.store = st }
}

// WithIssuer ties the source to the authorization server with the issuer
// identifier iss (RFC 8414 §2): its grant is saved under the resource and
// iss in the [Store], apart from grants of other authorization servers for
// the same resource.
func WithIssuer(iss string) TokenSourceOption {
	return func(s *TokenSource) { s.issuer = iss }
}

// Defaults of the source's escalation policy.
const (
	// defaultExhaustedTTL is how long a challenge that came straight back
	// after its escalation, or whose escalation was declined, is not
	// escalated again while the granted scopes stay the same.
	defaultExhaustedTTL = 10 * time.Minute
	// defaultEscalationTimeout is how long an escalation may run: long
	// enough for a person to read a consent page and log in.
	defaultEscalationTimeout = 5 * time.Minute
)

// WithEscalator makes e obtain the source's new authorizations, for every
// [Transport] using the source. Without one, a challenge that only a new
// authorization can cure comes back to the caller untouched.
func WithEscalator(e Escalator) TokenSourceOption {
	return func(s *TokenSource) { s.escalator = e }
}

// WithExhaustedTTL sets how long the guard remembers a challenge that came
// straight back after its escalation, or was declined (see the package
// documentation, "The guard"). Zero or less means 10 minutes.
func WithExhaustedTTL(d time.Duration) TokenSourceOption {
	return func(s *TokenSource) { s.exhaustedTTL = positiveOr(d, defaultExhaustedTTL) }
}

// WithEscalationTimeout bounds each escalation. An escalation does not end
// with the request that started it: a request whose context ends (an
// [http.Client] Timeout, say) stops waiting, but the escalation goes on and
// installs its grant, so that a person who consents after the request gave
// up is not asked again on the next one. Zero or less means 5 minutes:
// long enough for a person to read a consent page and log in.
func WithEscalationTimeout(d time.Duration) TokenSourceOption {
	return func(s *TokenSource) { s.escalationTimeout = positiveOr(d, defaultEscalationTimeout) }
}

func positiveOr(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

// WithScopes records the scopes the initial token was requested with. They
// are the base of every escalation's scope union and, when the token
// response carried no scope, the granted set (RFC 6749 §5.1).
func WithScopes(scopes ...string) TokenSourceOption {
	return func(s *TokenSource) { s.requested = Scopes(nil).Union(scopes) }
}

// TokenSource is the one authority for the grant of one protected resource.
// It holds the current token, the scopes requested and granted, how to
// refresh and the escalation policy ([WithEscalator], [WithExhaustedTTL],
// [WithEscalationTimeout]), and it runs the remedies a [Transport] decides
// on, as the package documentation says ("The guard", "Concurrency and
// timeouts"). Any number of Transports, and [oauth2.Transport]s, can share
// one source: they share one set of remedies and one policy.
//
// Every token installed, by refresh, escalation or [TokenSource.Set],
// starts a new generation. A rejected request is matched against the
// generation it carried, so that requests rejected with the same token
// share one remedy, and a request rejected with an old token is replayed
// with the current one.
//
// TokenSource is an [oauth2.TokenSource] and is safe for concurrent use.
// Create one with [NewTokenSource].
type TokenSource struct {
	resource  string
	origin    weborigin.Origin
	originKey string // origin.String(), part of every challenge key
	// hostport is the resource URL's Host in lower case: most request URLs
	// spell it the same, which matchesOrigin checks before splitting ports.
	hostport string
	store    Store // nil: the grant lives in this source alone

	// The escalation policy, fixed when the source is made: the one
	// authority for the grant runs it, whichever Transport asks.
	escalator         Escalator // nil: no escalation
	exhaustedTTL      time.Duration
	escalationTimeout time.Duration

	// mu guards the state below. It is never held across a network call
	// or a call of user code.
	mu sync.Mutex
	// snap is the current token, its generation (counting installs, 0
	// before the first) and its Authorization field value: written under
	// mu, read with or without it.
	snap      atomic.Pointer[snapshot]
	grantSeq  uint64 // counts new grants (escalations, Set); a refresh keeps the grant
	requested Scopes
	granted   Scopes
	refresh   RefreshFunc
	issuer    string       // of the current grant, or the one given by WithIssuer
	goneGen   uint64       // generation whose refresh token the server refused (invalid_grant)
	escalated *escalation  // the escalation under way, nil when none
	dpop      *dpop.Config // nil: no DPoP (see WithDPoP)
	guard     guard

	refreshes flightGroup[uint64] // keyed by the generation being refreshed

	// accepted is the newest generation that drew a response without a
	// challenge: a token the resource took at least once. The guard tells
	// by it a challenge that came straight back after its escalation from
	// the same challenge once the token has expired.
	accepted atomic.Uint64

	loaded    atomic.Bool // the saved grant was loaded from the store
	storeKey  StoreKey
	loadMutex sync.Mutex // one load at a time
}

// NewTokenSource returns a source for the protected resource identified by
// resource, its canonical URI (RFC 8707 §2; MCP authorization, "Canonical
// Server URI"), starting with tok, which may be nil: the first request then
// goes out without a token and the source's [Escalator] is asked for
// the first authorization.
//
// The resource must be an absolute http or https URI without fragment; plain
// http is accepted only for loopback hosts (RFC 6750 §5.3). Without
// [WithOAuth2Config], [WithRefreshFunc] or an Escalator that supplies
// [Grant.Refresh], the source never refreshes.
func NewTokenSource(resource string, tok *oauth2.Token, opts ...TokenSourceOption) (*TokenSource, error) {
	u, err := url.Parse(resource)
	if err != nil {
		return nil, fmt.Errorf("stepup: resource %q: %w", resource, err)
	}
	if u.Fragment != "" || strings.HasSuffix(resource, "#") {
		return nil, fmt.Errorf("stepup: resource %q has a fragment (RFC 8707 §2)", resource)
	}
	o, ok := weborigin.Of(u)
	if !ok {
		return nil, fmt.Errorf("stepup: resource %q is not an absolute http(s) URI", resource)
	}
	if o.Scheme == "http" && !netguard.IsLoopbackHost(o.Host) {
		return nil, fmt.Errorf("stepup: resource %q: bearer tokens need https except on loopback (RFC 6750 §5.3)", resource)
	}
	s := &TokenSource{resource: resource, origin: o, originKey: o.String(), hostport: strings.ToLower(u.Host),
		exhaustedTTL: defaultExhaustedTTL, escalationTimeout: defaultEscalationTimeout}
	s.snap.Store(&snapshot{})
	s.refreshes.timeout = refreshTimeout
	for _, opt := range opts {
		opt(s)
	}
	s.storeKey = StoreKey{Resource: resource, Issuer: s.issuer}
	s.loaded.Store(s.store == nil)
	if tok != nil {
		s.installLocked(tok, s.requested, true)
	}
	return s, nil
}

// Resource returns the resource URI the source holds tokens for.
func (s *TokenSource) Resource() string { return s.resource }

// Token returns the current token, refreshing it first when it has expired.
// It implements [oauth2.TokenSource]; see [TokenSource.TokenContext].
func (s *TokenSource) Token() (*oauth2.Token, error) {
	return s.TokenContext(context.Background())
}

// TokenContext returns the current token, refreshing it with ctx first when
// it has expired. It returns [ErrNoToken] before the first token is
// installed.
//
// An expired token that cannot be refreshed, because it has no refresh
// token or the authorization server refused it (invalid_grant), is
// returned as it is: the resource's 401 then tells a [Transport] to have
// the [Escalator] obtain a new authorization, also when an [oauth2.Transport]
// below it uses this source. A refresh that failed for another reason (the
// token endpoint is down, say) returns an error wrapping
// [ErrRefreshFailed]. The returned token must not be modified.
func (s *TokenSource) TokenContext(ctx context.Context) (*oauth2.Token, error) {
	if err := s.load(ctx); err != nil {
		return nil, err
	}
	tok, gen, _ := s.current()
	if tok == nil {
		return nil, ErrNoToken
	}
	if tok.Valid() {
		return tok, nil
	}
	switch err := s.refreshFrom(ctx, gen); {
	case err == nil:
		tok, _, _ = s.current()
		return tok, nil
	case errors.Is(err, ErrNoRefreshToken) || grantGone(err):
		return tok, nil // the resource decides; see above
	default:
		return nil, err
	}
}

// Set installs tok, obtained by a new authorization that requested the
// scopes requested, as the current token. The granted scopes are taken
// from the token response's scope parameter when present and are the
// requested ones otherwise (RFC 6749 §5.1). Later refreshes use tok's
// refresh token; a token without one is never refreshed.
//
// A nil token, or one without access token, makes the source forget its
// token: the next request goes out without one.
//
// With a [Store], Set saves the grant there too; use
// [TokenSource.SetContext] to bound that and learn whether it worked.
func (s *TokenSource) Set(tok *oauth2.Token, requested Scopes) {
	_ = s.SetContext(context.Background(), tok, requested)
}

// SetContext is [TokenSource.Set] with a context for the [Store], if any.
// The token is current in the source whatever the store answers; the error
// says whether it was saved (or, for a nil token, deleted) there.
func (s *TokenSource) SetContext(ctx context.Context, tok *oauth2.Token, requested Scopes) error {
	if s.store != nil {
		// What is set now supersedes whatever was saved before.
		s.loadMutex.Lock()
		defer s.loadMutex.Unlock()
		s.loaded.Store(true)
	}
	s.mu.Lock()
	s.installLocked(tok, requested, true)
	saved := s.savedLocked()
	s.mu.Unlock()
	switch {
	case s.store == nil:
		return nil
	case !usable(saved):
		return s.store.Delete(ctx, s.storeKey)
	}
	return s.store.Update(ctx, s.storeKey, func(context.Context, *SavedGrant) (*SavedGrant, error) { return saved, nil })
}

// SetRefreshFunc makes the source refresh with f from now on; nil turns
// refreshing off. Use it when how to refresh is learnt after the source was
// made, as when the client was registered during the first authorization;
// an [Escalator] says it in [Grant.Refresh] instead.
func (s *TokenSource) SetRefreshFunc(f RefreshFunc) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.refresh = f
	s.goneGen = 0 // a new client may redeem what the old one could not
}

// Scopes returns the scopes the current token was requested with and those
// granted.
func (s *TokenSource) Scopes() (requested, granted Scopes) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.requested), slices.Clone(s.granted)
}

// String describes the source without its token.
func (s *TokenSource) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return fmt.Sprintf("stepup.TokenSource{resource: %q, generation: %d, granted: %q}", s.resource, s.snap.Load().gen, s.granted.String())
}

// LogValue describes the source for log/slog without its token.
func (s *TokenSource) LogValue() slog.Value {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slog.GroupValue(
		slog.String("resource", s.resource),
		slog.Uint64("generation", s.snap.Load().gen),
		slog.String("granted", s.granted.String()),
	)
}

// snapshot is what a request needs of the current token, published as one
// immutable value so that the path of every request reads it without a
// lock and passes it on as one pointer. A request keeps the snapshot it was
// sent with: the token it carried, whose tok is nil when none was attached.
type snapshot struct {
	tok  *oauth2.Token // nil before the first token
	gen  uint64
	auth []string     // Authorization field value for tok, nil when none; shared, read-only
	dpop *dpop.Config // set when tok is bound to its key: each send carries a proof
}

// current returns the current token, its generation and the Authorization
// field value for it.
func (s *TokenSource) current() (*oauth2.Token, uint64, []string) {
	c := s.snap.Load()
	return c.tok, c.gen, c.auth
}

// noteAccepted records that a request carrying generation gen drew no
// challenge. It runs on every request: one atomic load when nothing
// changes.
func (s *TokenSource) noteAccepted(gen uint64) {
	for {
		a := s.accepted.Load()
		if gen <= a || s.accepted.CompareAndSwap(a, gen) {
			return
		}
	}
}

// installLocked makes tok current and returns its generation. newGrant says
// that tok comes from a new authorization rather than a refresh.
func (s *TokenSource) installLocked(tok *oauth2.Token, requested Scopes, newGrant bool) uint64 {
	if newGrant {
		s.grantSeq++
	}
	s.requested = slices.Clone(requested)
	next := &snapshot{gen: s.snap.Load().gen + 1}
	if tok == nil || tok.AccessToken == "" {
		s.granted = nil
	} else {
		next.tok = tok
		next.auth = []string{tok.Type() + " " + tok.AccessToken}
		if s.dpop != nil && dpopBound(tok) {
			next.dpop = s.dpop
			next.auth = []string{dpop.Scheme + " " + tok.AccessToken}
		}
		s.granted = grantedScopes(tok, s.requested)
	}
	s.snap.Store(next)
	return next.gen
}

// grantedScopes returns the scope of a token response, or requested when the
// response has none (RFC 6749 §5.1).
func grantedScopes(tok *oauth2.Token, requested Scopes) Scopes {
	if g, ok := scopeExtra(tok); ok {
		return g
	}
	return requested
}

func scopeExtra(tok *oauth2.Token) (Scopes, bool) {
	var raw string
	switch v := tok.Extra("scope").(type) {
	case string:
		raw = v
	case int64: // a form-encoded response with a numeric scope
		raw = strconv.FormatInt(v, 10)
	default:
		return nil, false
	}
	g, err := ParseScopes(raw)
	if err != nil {
		return nil, false
	}
	return g, true
}

// matchesOrigin reports whether u has the source's origin. A URL spelled as
// the resource's, the common case, is matched without splitting host and
// port.
func (s *TokenSource) matchesOrigin(u *url.URL) bool {
	if u != nil && u.Host == s.hostport && u.Scheme == s.origin.Scheme {
		return true
	}
	return s.origin.Matches(u)
}
