package stepup

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/oauth2"
)

var (
	// ErrNoToken is returned by [TokenSource.Token] while the source holds
	// no token yet: the first authorization has not happened.
	ErrNoToken = errors.New("stepup: no token yet")
	// ErrNoRefreshToken is returned by [TokenSource.Refresh] when the
	// current token carries no refresh token, or the source has no way to
	// refresh (see [WithOAuth2Config] and [WithRefreshFunc]).
	ErrNoRefreshToken = errors.New("stepup: no refresh token")
)

// TokenSourceOption configures a [TokenSource] made by [NewTokenSource].
type TokenSourceOption func(*TokenSource)

// WithOAuth2Config makes the source refresh tokens through c (the
// refresh_token grant of [oauth2.Config.TokenSource]), adding the RFC 8707
// resource parameter (R-8707-3). As with x/oauth2, the token request goes
// through the [*http.Client] of the context under [oauth2.HTTPClient], if
// any. Unless [WithScopes] says otherwise, the scopes requested are
// c.Scopes. A nil c leaves the source without refresh.
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

// WithScopes records the scopes the initial token was requested with. They
// are the base of every escalation's scope union (R-MCP-4) and, when the
// token response carried no scope, the granted set (R-6749-2).
func WithScopes(scopes ...string) TokenSourceOption {
	return func(s *TokenSource) { s.requested = Scopes(nil).Union(scopes) }
}

// TokenSource holds the token for one protected resource: the current
// token, the scopes it was requested with and the scopes granted. It is an
// [oauth2.TokenSource], so an [oauth2.Transport] can use it too, and it is
// safe for concurrent use.
//
// A [Transport] sends its tokens only to the origin (scheme, host and port)
// of its resource. Every token it installs, by refresh or by
// [TokenSource.Set], starts a new generation: a rejected request is matched
// against the generation it carried, so concurrent requests that fail with
// the same token share one remedy.
//
// Create one with [NewTokenSource].
type TokenSource struct {
	resource  string
	origin    origin
	originKey string // origin.String(), part of every challenge key
	// hostport is the resource URL's Host in lower case: most request URLs
	// spell it the same, which matchesOrigin checks before splitting ports.
	hostport string
	refresh  RefreshFunc

	// mu guards the state below; it is never held across a network call.
	// Token and scopes are what a store shared across processes would hold;
	// the generation only orders the tokens this process has seen.
	mu        sync.Mutex
	tok       *oauth2.Token
	gen       uint64   // counts installs; 0 before the first
	auth      []string // Authorization field value for tok, built once per generation; shared, read-only
	requested Scopes
	granted   Scopes

	refreshes flightGroup[uint64] // keyed by the generation being refreshed
}

// refreshTimeout bounds a refresh that every caller has stopped waiting for.
// It runs on so that a rotated refresh token is not lost.
const refreshTimeout = time.Minute

// NewTokenSource returns a source for the protected resource identified by
// resource, its canonical URI (RFC 8707 §2, R-MCP-13), starting with tok,
// which may be nil: the first request then goes out without a token and the
// [Transport]'s [Escalator] is asked for the first authorization.
//
// The resource must be an absolute http or https URI without fragment; plain
// http is accepted only for loopback hosts (R-6750-13). Without
// [WithOAuth2Config] or [WithRefreshFunc] the source never refreshes.
func NewTokenSource(resource string, tok *oauth2.Token, opts ...TokenSourceOption) (*TokenSource, error) {
	u, err := url.Parse(resource)
	if err != nil {
		return nil, fmt.Errorf("stepup: resource %q: %w", resource, err)
	}
	if u.Fragment != "" || strings.HasSuffix(resource, "#") {
		return nil, fmt.Errorf("stepup: resource %q has a fragment (RFC 8707 §2)", resource)
	}
	o, ok := originOf(u)
	if !ok {
		return nil, fmt.Errorf("stepup: resource %q is not an absolute http(s) URI", resource)
	}
	if o.scheme == "http" && !isLoopbackHost(o.host) {
		return nil, fmt.Errorf("stepup: resource %q: bearer tokens need https except on loopback (RFC 6750 §5.3)", resource)
	}
	s := &TokenSource{resource: resource, origin: o, originKey: o.String(), hostport: strings.ToLower(u.Host)}
	s.refreshes.detachedFor = refreshTimeout
	for _, opt := range opts {
		opt(s)
	}
	if tok != nil {
		s.installLocked(tok, s.requested)
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
// it has expired and can be refreshed. It returns [ErrNoToken] before the
// first token is installed. The returned token must not be modified.
func (s *TokenSource) TokenContext(ctx context.Context) (*oauth2.Token, error) {
	tok, gen, _ := s.current()
	if tok == nil {
		return nil, ErrNoToken
	}
	if tok.Valid() {
		return tok, nil
	}
	return s.refreshGen(ctx, gen)
}

// Refresh returns a token newer than rejected, the token a resource server
// refused. When the source already holds a newer token, because another
// goroutine refreshed or an escalation installed one, it is returned without
// a network call. Otherwise the current refresh token is redeemed, once for
// all goroutines asking at the same time (R-6749-6): a rotating refresh
// token is never used twice. Refresh never widens the scope.
//
// A caller whose ctx ends stops waiting, but the refresh goes on (for up to
// a minute) and its token is installed: with a rotating refresh token, a
// refresh abandoned after the server answered would lose the new refresh
// token, and the grant with it.
func (s *TokenSource) Refresh(ctx context.Context, rejected *oauth2.Token) (*oauth2.Token, error) {
	tok, gen, _ := s.current()
	if tok != nil && (rejected == nil || tok.AccessToken != rejected.AccessToken) {
		return tok, nil
	}
	return s.refreshGen(ctx, gen)
}

// Set installs tok, obtained by a new authorization that requested the
// scopes requested, as the current token. The granted scopes are taken
// from the token response's scope parameter when present and are the
// requested ones otherwise (RFC 6749 §5.1, R-6749-2). Later refreshes use
// tok's refresh token; a token without one is never refreshed.
//
// The [Transport] calls Set with what its [Escalator] returns; call it
// yourself to install a token obtained elsewhere.
//
// A nil token, or one without access token, makes the source forget its
// token: the next request goes out without one.
func (s *TokenSource) Set(tok *oauth2.Token, requested Scopes) {
	s.install(tok, requested)
}

// SetRefreshFunc makes the source refresh with f from now on; nil turns
// refreshing off. Use it when how to refresh is learnt after the source was
// made, as when the client was registered during the first authorization;
// an [Escalator] can say it in [Grant.Refresh] instead.
func (s *TokenSource) SetRefreshFunc(f RefreshFunc) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.refresh = f
}

func (s *TokenSource) canRefresh() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.refresh != nil
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
	return fmt.Sprintf("stepup.TokenSource{resource: %q, generation: %d, granted: %q}", s.resource, s.gen, s.granted.String())
}

// LogValue describes the source for log/slog without its token.
func (s *TokenSource) LogValue() slog.Value {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slog.GroupValue(
		slog.String("resource", s.resource),
		slog.Uint64("generation", s.gen),
		slog.String("granted", s.granted.String()),
	)
}

// current returns the current token, its generation and the Authorization
// header value for it.
func (s *TokenSource) current() (*oauth2.Token, uint64, []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tok, s.gen, s.auth
}

func (s *TokenSource) grantedKey() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.granted.sortedKey()
}

// scopesToRequest returns requested ∪ granted ∪ challenged (R-MCP-4).
func (s *TokenSource) scopesToRequest(challenged Scopes) Scopes {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requested.Union(s.granted, challenged)
}

// install makes tok current and returns its generation.
func (s *TokenSource) install(tok *oauth2.Token, requested Scopes) uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.installLocked(tok, requested)
}

func (s *TokenSource) installLocked(tok *oauth2.Token, requested Scopes) uint64 {
	s.gen++
	s.requested = slices.Clone(requested)
	if tok == nil || tok.AccessToken == "" {
		s.tok, s.auth, s.granted = nil, nil, nil
		return s.gen
	}
	s.tok = tok
	s.auth = []string{tok.Type() + " " + tok.AccessToken}
	s.granted = grantedScopes(tok, s.requested)
	return s.gen
}

// refreshGen makes sure the current generation is newer than rejected,
// refreshing single-flight if it is not, and returns the current token.
func (s *TokenSource) refreshGen(ctx context.Context, rejected uint64) (*oauth2.Token, error) {
	err := s.refreshes.do(ctx, rejected, func() func(context.Context) error {
		return func(ctx context.Context) error { return s.doRefresh(ctx, rejected) }
	}, nil)
	if err != nil {
		return nil, err
	}
	tok, _, _ := s.current()
	return tok, nil
}

func (s *TokenSource) doRefresh(ctx context.Context, rejected uint64) error {
	tok, gen, _ := s.current()
	if gen != rejected && tok != nil {
		return nil // someone already installed a newer token
	}
	s.mu.Lock()
	refresh := s.refresh
	s.mu.Unlock()
	if tok == nil || tok.RefreshToken == "" || refresh == nil {
		return ErrNoRefreshToken
	}
	nt, err := callRefresh(ctx, refresh, tok, s.resource)
	if err != nil {
		return redactError(fmt.Errorf("stepup: refresh for %s: %w", s.origin, err), tok)
	}
	if nt == nil || nt.AccessToken == "" {
		return fmt.Errorf("stepup: refresh for %s: the RefreshFunc returned no access token", s.origin)
	}
	if nt.RefreshToken == "" {
		// No refresh token in the response: the old one stays valid
		// (RFC 6749 §6).
		c := *nt
		c.RefreshToken = tok.RefreshToken
		nt = &c
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.gen != rejected {
		// An escalation installed a token of a newer grant meanwhile; a
		// token refreshed from the old grant must not replace it.
		return nil
	}
	granted := s.granted
	if g, ok := scopeExtra(nt); ok {
		granted = g
	}
	requested := s.requested
	s.installLocked(nt, requested)
	s.granted = granted
	return nil
}

// callRefresh calls f, turning a panic into an error that redactError can
// clean: a panic value is as likely as an error to hold the token.
func callRefresh(ctx context.Context, f RefreshFunc, tok *oauth2.Token, resource string) (nt *oauth2.Token, err error) {
	defer func() {
		if r := recover(); r != nil {
			nt, err = nil, fmt.Errorf("the RefreshFunc panicked: %v", r)
		}
	}()
	return f(ctx, tok, resource)
}

// grantedScopes returns the scope of a token response, or requested when the
// response has none (R-6749-2).
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

// origin is the scheme, host and port of a URL (RFC 6454), the unit tokens
// are bound to.
type origin struct {
	scheme string // lower case
	host   string // lower case, without brackets
	port   string // explicit or the scheme's default
}

// originOf returns u's origin, or false when u is not an absolute http(s)
// URL with a host.
func originOf(u *url.URL) (origin, bool) {
	scheme := strings.ToLower(u.Scheme)
	if (scheme != "http" && scheme != "https") || u.Hostname() == "" {
		return origin{}, false
	}
	return origin{scheme: scheme, host: strings.ToLower(u.Hostname()), port: portOf(scheme, u.Port())}, true
}

func portOf(scheme, port string) string {
	if port != "" {
		return port
	}
	if strings.EqualFold(scheme, "https") {
		return "443"
	}
	return "80"
}

// matches reports whether u has origin o. It does not allocate: it runs on
// every request.
func (o origin) matches(u *url.URL) bool {
	return u != nil && strings.EqualFold(u.Scheme, o.scheme) &&
		strings.EqualFold(u.Hostname(), o.host) && portOf(o.scheme, u.Port()) == o.port
}

func (o origin) String() string {
	host := o.host
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	if o.port == portOf(o.scheme, "") {
		return o.scheme + "://" + host
	}
	return o.scheme + "://" + host + ":" + o.port
}

// isLoopbackHost reports whether host names the local machine: localhost or
// a name under it (RFC 6761 §6.3), also written as an absolute name with a
// trailing dot, which resolvers answer alike, or a loopback address.
func isLoopbackHost(host string) bool {
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.Unmap().IsLoopback()
}

// matchesOrigin reports whether u has the source's origin. A URL spelled as
// the resource's, the common case, is matched without splitting host and
// port.
func (s *TokenSource) matchesOrigin(u *url.URL) bool {
	if u != nil && u.Host == s.hostport && u.Scheme == s.origin.scheme {
		return true
	}
	return s.origin.matches(u)
}
