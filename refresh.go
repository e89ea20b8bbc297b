package stepup

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/hashicorp/go-retryablehttp"

	"github.com/stepup-go/stepup/dpop"
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

// ErrInvalidGrant says that the authorization server refused a refresh
// token (invalid_grant, RFC 6749 §5.2): it expired, was revoked or was
// used before. The grant is gone; a [Transport] asks its [Escalator] for a
// new authorization.
var ErrInvalidGrant = errors.New("stepup: refresh token refused (invalid_grant)")

// grantGone reports whether err, the error of a refresh, says that the
// grant is gone rather than that the refresh failed for now.
func grantGone(err error) bool {
	var re *oauth2.RetrieveError
	return errors.Is(err, ErrInvalidGrant) || errors.As(err, &re) && re.ErrorCode == "invalid_grant"
}

// Retries of a refresh request that failed for a reason that may pass: a
// 5xx or 429 answer, or a network error. A rotating refresh token makes a
// retry after an answer was lost a reuse, which an authorization server may
// punish; a 5xx or a refused connection says the request was not served,
// and a few quick retries keep a hiccup from failing the call.
const (
	refreshRetryMax     = 3
	refreshRetryWaitMin = 100 * time.Millisecond
	refreshRetryWaitMax = time.Second
)

// RefreshWithConfig returns a [RefreshFunc] that refreshes through c, the
// refresh_token grant of [oauth2.Config.TokenSource], adding the RFC 8707
// resource parameter, which x/oauth2 has no option for. As with x/oauth2,
// the token request goes through the [*http.Client] of the context under
// [oauth2.HTTPClient], if any, else [http.DefaultClient]. A request that
// gets a 5xx or 429 answer or a network error is retried up to three times
// with exponential backoff of at most a second between tries (through
// go-retryablehttp); a 4xx answer is never retried.
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
	retrying := &retryablehttp.Client{
		HTTPClient:   base,
		RetryWaitMin: refreshRetryWaitMin,
		RetryWaitMax: refreshRetryWaitMax,
		RetryMax:     refreshRetryMax,
		CheckRetry:   retryablehttp.DefaultRetryPolicy,
		Backoff:      cappedBackoff,
		// The last answer goes to x/oauth2, which turns it into an
		// *oauth2.RetrieveError with the server's error code.
		ErrorHandler: retryablehttp.PassthroughErrorHandler,
	}
	c := &http.Client{Transport: &resourceParamTransport{
		base:     &retryablehttp.RoundTripper{Client: retrying},
		resource: resource,
	}}
	return context.WithValue(ctx, oauth2.HTTPClient, c)
}

// cappedBackoff is retryablehttp's exponential backoff, which honours a
// Retry-After header, capped at hi: a server may ask for an hour.
func cappedBackoff(lo, hi time.Duration, attempt int, resp *http.Response) time.Duration {
	return min(retryablehttp.DefaultBackoff(lo, hi, attempt, resp), hi)
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
