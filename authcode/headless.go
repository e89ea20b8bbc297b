package authcode

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
)

// DefaultHeadlessRedirectURI is the redirect URI of a [Headless] receiver
// when Headless.RedirectURI is empty. Nothing listens there: the response
// is read from the Location header that points to it.
const DefaultHeadlessRedirectURI = "http://127.0.0.1/callback"

// maxHeadlessRedirects bounds the redirects a Headless follows within the
// authorization server before the one to the redirect URI.
const maxHeadlessRedirects = 10

// Headless is a [Receiver] for tests and automation, with an
// authorization server that answers without a person, as the MCP
// conformance suite's does, or that knows the caller by a cookie or a
// header its Client sends: it GETs the authorization URL, follows the
// server's own redirects, and reads the response from the Location of
// the redirect to the redirect URI, which it does not follow. An answer
// that is not such a redirect, such as a login page, is an error: it
// needs a person.
type Headless struct {
	// RedirectURI is the redirect URI to send; "" means
	// DefaultHeadlessRedirectURI. The client must be registered with it,
	// unless it is registered dynamically.
	RedirectURI string
	// Client sends the requests; nil means the
	// [AuthorizationRequest]'s, held to the Escalator's policy. Its
	// CheckRedirect, if any, is asked about the other redirects.
	Client *http.Client
}

// Receive implements [Receiver].
func (h *Headless) Receive(ctx context.Context, authorize AuthorizeFunc) (url.Values, error) {
	redirect := h.RedirectURI
	if redirect == "" {
		redirect = DefaultHeadlessRedirectURI
	}
	target, err := url.Parse(redirect)
	if err != nil || !target.IsAbs() {
		return nil, fmt.Errorf("authcode: Headless.RedirectURI %q is not an absolute URL", redirect)
	}
	ar, err := authorize(ctx, redirect)
	if err != nil {
		return nil, err
	}
	base := h.Client
	if base == nil {
		base = ar.Client
	}
	if base == nil {
		base = http.DefaultClient
	}
	c := *base
	c.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if isRedirectURI(req.URL, target) {
			return http.ErrUseLastResponse
		}
		if len(via) >= maxHeadlessRedirects {
			return fmt.Errorf("authcode: stopped after %d redirects", maxHeadlessRedirects)
		}
		if base.CheckRedirect != nil {
			return base.CheckRedirect(req, via)
		}
		return nil
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, ar.URL, nil)
	if err != nil {
		return nil, fmt.Errorf("authcode: authorization request: %w", err)
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, fmt.Errorf("authcode: authorization request: %w", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
	loc, err := resp.Location()
	if err != nil || resp.StatusCode < 300 || resp.StatusCode > 399 || !isRedirectURI(loc, target) {
		return nil, fmt.Errorf("authcode: the authorization endpoint answered %s, not a redirect to %s: %w", resp.Status, redirect, errNeedsPerson)
	}
	return loc.Query(), nil
}

var errNeedsPerson = errors.New("it needs a person")

// isRedirectURI reports whether u goes to the redirect URI target:
// scheme, host, port and path, whatever the query.
func isRedirectURI(u, target *url.URL) bool {
	return u.Scheme == target.Scheme && u.Host == target.Host && u.EscapedPath() == target.EscapedPath()
}
