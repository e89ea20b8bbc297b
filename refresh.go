package stepup

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/hashicorp/go-retryablehttp"

	"github.com/stepup-go/stepup/dpop"
	"github.com/stepup-go/stepup/internal/httpretry"
	"golang.org/x/oauth2"
)

// RefreshFunc redeems the refresh token of tok at the authorization server
// (RFC 6749 §6) and returns the new token. resource is the RFC 8707
// resource the token is for: send it as the resource parameter of the
// token request (RFC 8707 §2.2). A RefreshFunc must not widen the scope: a
// refresh can never grant a scope the resource owner has not granted, so
// stepup never asks one to.
//
// Return an error wrapping [ErrInvalidGrant], or the [*oauth2.RetrieveError]
// of an invalid_grant response, when the authorization server refused the
// refresh token: the grant is gone and only a new authorization helps. Any
// other error fails the request that needed the refresh, without asking the
// user anything; the next request tries again. Retry transient failures
// (5xx, network errors) inside the function, as [RefreshWithConfig] does.
//
// A [TokenSource] calls it with its current token, one call at a time, and
// keeps tok's refresh token when the returned token omits one. tok must not
// be modified; the returned token is not modified afterwards.
type RefreshFunc func(ctx context.Context, tok *oauth2.Token, resource string) (*oauth2.Token, error)

// grantGone reports whether err, the error of a refresh, says that the
// grant is gone rather than that the refresh failed for now.
func grantGone(err error) bool {
	var re *oauth2.RetrieveError
	return errors.Is(err, ErrInvalidGrant) || errors.As(err, &re) && re.ErrorCode == "invalid_grant"
}

// RefreshWithConfig returns a [RefreshFunc] that refreshes through c, the
// refresh_token grant of [oauth2.Config.TokenSource], adding the RFC 8707
// resource parameter, which x/oauth2 has no option for. As with x/oauth2,
// the token request goes through the [*http.Client] of the context under
// [oauth2.HTTPClient], if any, else [http.DefaultClient]. A request that
// gets a 5xx (but 501) or 429 answer or a network error is retried up to
// three times with exponential backoff of at most a second between tries
// (through go-retryablehttp); a 4xx answer is never retried. Retrying is
// safe here, unlike for an authorization code: the refresh token is the
// one the next try would present anyway.
func RefreshWithConfig(c *oauth2.Config) RefreshFunc {
	return func(ctx context.Context, tok *oauth2.Token, resource string) (*oauth2.Token, error) {
		expired := *tok
		expired.Expiry = time.Unix(1, 0) // past, so that x/oauth2 refreshes at once
		return c.TokenSource(refreshContext(ctx, resource), &expired).Token()
	}
}

// refreshContext returns a context whose oauth2.HTTPClient adds resource to
// token requests and retries transient failures.
func refreshContext(ctx context.Context, resource string) context.Context {
	base := http.DefaultClient
	if hc, ok := ctx.Value(oauth2.HTTPClient).(*http.Client); ok && hc != nil {
		base = hc
	}
	if dc := dpop.FromContext(ctx); dc != nil {
		// Inside the retries: each try gets a fresh proof (RFC 9449 §11.1).
		base = dc.Client(base)
	}
	// The last answer goes to x/oauth2, which turns it into an
	// *oauth2.RetrieveError with the server's error code.
	retrying := httpretry.New(base, httpretry.TokenPolicy(httpretry.RefreshToken), httpretry.Max, httpretry.WaitMin, httpretry.WaitMax)
	c := &http.Client{Transport: &resourceParamTransport{
		base:     &retryablehttp.RoundTripper{Client: retrying},
		resource: resource,
	}}
	return context.WithValue(ctx, oauth2.HTTPClient, c)
}

// maxTokenRequestBody bounds the token request body resourceParamTransport
// reads; x/oauth2's refresh requests are a few hundred bytes.
const maxTokenRequestBody = 64 << 10

// resourceParamTransport adds the RFC 8707 resource parameter to the form
// body of token requests that lack one.
type resourceParamTransport struct {
	base     http.RoundTripper
	resource string
}

func (t *resourceParamTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if t.resource == "" || req.Body == nil || req.Method != http.MethodPost {
		return t.base.RoundTrip(req)
	}
	b, err := io.ReadAll(io.LimitReader(req.Body, maxTokenRequestBody+1))
	req.Body.Close()
	if err != nil {
		return nil, fmt.Errorf("stepup: reading token request: %w", err)
	}
	if len(b) > maxTokenRequestBody {
		return nil, errors.New("stepup: token request body over 64 KiB")
	}
	form, err := url.ParseQuery(string(b))
	if err == nil && !form.Has("resource") {
		if len(b) > 0 {
			b = append(b, '&')
		}
		b = append(b, "resource="+url.QueryEscape(t.resource)...)
	}
	body := string(b)
	r2 := req.Clone(req.Context())
	r2.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader(body)), nil }
	r2.Body, _ = r2.GetBody()
	r2.ContentLength = int64(len(body))
	return t.base.RoundTrip(r2)
}

// How the source runs a refresh: once per rejected generation, for every
// request that carried it, and across processes through the Store.

// refreshTimeout bounds a refresh that every caller has stopped waiting for.
// It runs on so that a rotated refresh token is not lost.
const refreshTimeout = time.Minute

// refreshFrom makes sure the current generation is newer than rejected,
// refreshing once for all the goroutines asking at the same time if it is
// not (OAuth 2.1 §4.3.1: a rotating refresh token is redeemed once).
func (s *TokenSource) refreshFrom(ctx context.Context, rejected uint64) error {
	return s.refreshes.do(ctx, rejected, func(ctx context.Context) error { return s.runRefresh(ctx, rejected) })
}

// runRefresh is the refresh flight of generation rejected. With a store,
// it runs alone across everyone sharing it, and takes the grant saved there
// when another source refreshed first: a rotating refresh token is
// redeemed once across processes too.
func (s *TokenSource) runRefresh(ctx context.Context, rejected uint64) error {
	s.mu.Lock()
	cur := s.snap.Load()
	tok, gen, refresh, gone := cur.tok, cur.gen, s.refresh, s.goneGen == rejected
	s.mu.Unlock()
	switch {
	case gen != rejected && tok != nil:
		return nil // someone installed a newer token meanwhile
	case tok == nil || refresh == nil:
		return ErrNoRefreshToken
	}
	err := s.exclusive(ctx, func(ctx context.Context, saved *SavedGrant) (*SavedGrant, error) {
		if usable(saved) && saved.Token.AccessToken != tok.AccessToken {
			if saved.Token.Valid() && s.adoptSaved(saved, tok) {
				return nil, nil
			}
			// Expired too: refresh the saved grant, whose refresh
			// token is the newest.
			s.mu.Lock()
			s.adoptLocked(saved)
			cur := s.snap.Load()
			tok, rejected, gone = cur.tok, cur.gen, false
			s.mu.Unlock()
		}
		switch {
		case tok.RefreshToken == "":
			return nil, ErrNoRefreshToken
		case gone:
			return nil, fmt.Errorf("%w, earlier", ErrInvalidGrant)
		}
		nt, err := callRefresh(s.withDPoP(ctx), refresh, tok, s.resource)
		if err != nil {
			return nil, s.refreshFailed(err, rejected, tok)
		}
		return s.installRefreshed(nt, tok, rejected)
	})
	var se *storeError
	if errors.As(err, &se) {
		// No exclusivity, no refresh: it could redeem a refresh token
		// another process redeems too. It may work next time.
		return fmt.Errorf("%w: %w", ErrRefreshFailed, err)
	}
	return err
}

// installRefreshed installs nt, refreshed from tok of generation rejected,
// and returns what the store keeps of it.
func (s *TokenSource) installRefreshed(nt, tok *oauth2.Token, rejected uint64) (*SavedGrant, error) {
	if nt == nil || nt.AccessToken == "" {
		return nil, fmt.Errorf("%w for %s: the RefreshFunc returned no access token", ErrRefreshFailed, s.origin)
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
	if s.snap.Load().gen != rejected {
		// An escalation installed a token of a newer grant meanwhile; a
		// token refreshed from the old grant must not replace it.
		return nil, nil
	}
	granted := s.granted // a refresh keeps the grant's scope unless it says otherwise
	if g, ok := scopeExtra(nt); ok {
		granted = g
	}
	s.installLocked(nt, s.requested, false)
	s.granted = granted
	return s.savedLocked(), nil
}

// refreshFailed records a refused refresh token and returns err, the error
// of the refresh of generation rejected, as a typed error without tokens.
func (s *TokenSource) refreshFailed(err error, rejected uint64, tok *oauth2.Token) error {
	if grantGone(err) {
		s.mu.Lock()
		if s.snap.Load().gen == rejected {
			s.goneGen = rejected
		}
		s.mu.Unlock()
		if !errors.Is(err, ErrInvalidGrant) {
			err = fmt.Errorf("%w: %w", ErrInvalidGrant, err)
		}
		return redactError(fmt.Errorf("stepup: refresh for %s: %w", s.origin, err), tok)
	}
	return redactError(fmt.Errorf("%w for %s: %w", ErrRefreshFailed, s.origin, err), tok)
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

// canRefresh reports whether the token of generation gen, the current one,
// can be refreshed.
func (s *TokenSource) canRefresh(gen uint64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	cur := s.snap.Load()
	return cur.gen == gen && cur.tok != nil && cur.tok.RefreshToken != "" && s.refresh != nil && s.goneGen != gen
}

// The Transport's side: what a request rejected with its token asks of the
// source.

// refresh answers a rejected token: a newer token, else a refresh, else a
// re-authorization when the refresh cannot be done or the grant is gone.
// A refresh that failed for another reason fails the request with no
// prompt: an authorization server's hiccup must not send the user to a
// browser.
func (rt *roundTrip) refresh(ctx context.Context, c *challenge, s *snapshot) error {
	if rt.newerToken(s) {
		rt.t.event(ctx, slog.LevelDebug, "stepup: replaying with a newer token", c.attrs(rt.where())...)
		return nil
	}
	err := rt.refreshErr // the refresh before sending failed: no second try
	if err == nil {
		err = rt.ts.refreshFrom(ctx, s.gen)
	}
	switch {
	case err == nil:
		rt.t.event(ctx, slog.LevelInfo, "stepup: refreshed", c.attrs(rt.where())...)
		rt.remedies = append(rt.remedies, remedy{key: c.key, action: c.action})
		return nil
	case ctx.Err() != nil:
		return ctx.Err()
	case !errors.Is(err, ErrNoRefreshToken) && !grantGone(err):
		rt.t.event(ctx, slog.LevelWarn, "stepup: refresh failed", append(c.attrs(rt.where()), slog.String("error", err.Error()))...)
		return err
	case rt.ts.escalator == nil:
		return err
	}
	rt.t.event(ctx, slog.LevelInfo, "stepup: re-authorizing", append(c.attrs(rt.where()), slog.String("why", err.Error()))...)
	return rt.escalate(ctx, c, s)
}
