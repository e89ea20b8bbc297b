// Package httpretry is how stepup retries its own requests to
// authorization servers: one backoff for all of them, and one policy for
// token requests (RFC 6749 §3.2).
//
// # Token requests
//
// A token request is a POST that redeems something, and whether sending it
// again is safe depends on what happens if the first one was served and its
// answer lost. A failure says the server did not act on the request only
// when the connection was never made (a dial error: refused, no route, no
// such host), or when the server answered 429 Too Many Requests (RFC 6585
// §4) or 503 Service Unavailable (RFC 9110 §15.6.4): such a request is
// retried, whatever it redeems. Any other failure (another 5xx, a
// connection dropped or timed out after the request went out) leaves it
// open whether the server acted, and then what is redeemed decides:
//
//   - An authorization code (RFC 6749 §4.1.3) is redeemed once. A server
//     that sees it a second time must refuse it, and should revoke the
//     tokens already issued for it (RFC 6749 §4.1.2): it takes the replay
//     for an attacker's (§10.5). A second try after an unclear failure
//     thus gains nothing if the first was served and makes the client look
//     like an attack, so it is not made: the escalation fails, and the next
//     one asks for a new code.
//   - A refresh token (RFC 6749 §6) is the one the client would present on
//     its next try anyway: it holds no other. Even when the server rotates
//     refresh tokens and the first try was served, a second try is what
//     the next request would do, only sooner, and a server with a reuse
//     grace period answers it with the rotated token. So it is retried.
//
// A 4xx answer other than 429 is never retried: the same request would be
// refused again. Nor is a request whose target the network policy refused,
// nor one whose context ended.
package httpretry

import (
	"context"
	"errors"
	"net"
	"net/http"
	"time"

	"github.com/hashicorp/go-retryablehttp"

	"github.com/stepup-go/stepup/internal/netguard"
)

// Token requests are retried up to Max times, waiting from WaitMin to
// WaitMax between tries: a hiccup should not fail the call, and a person
// may be waiting.
const (
	Max     = 3
	WaitMin = 100 * time.Millisecond
	WaitMax = time.Second
)

// Redeems says what a token request presents, which decides whether it
// may be sent again after an unclear failure (see the package
// documentation).
type Redeems int

const (
	// Code is an authorization code, which the server accepts once.
	Code Redeems = iota
	// RefreshToken is a refresh token, which the client presents again
	// on its next try anyway.
	RefreshToken
)

// TokenPolicy returns the retry policy of a token request that presents
// what: see the package documentation.
func TokenPolicy(what Redeems) retryablehttp.CheckRetry {
	return func(ctx context.Context, resp *http.Response, err error) (bool, error) {
		if ctx.Err() != nil {
			return false, ctx.Err()
		}
		if err != nil {
			switch {
			case errors.Is(err, netguard.ErrRefused):
				return false, err
			case notSent(err):
				return true, nil
			case what == RefreshToken:
				// retryablehttp's policy knows the errors that will not
				// pass: too many redirects, a bad scheme, a certificate
				// not trusted.
				return retryablehttp.DefaultRetryPolicy(ctx, resp, err)
			}
			return false, nil
		}
		switch s := resp.StatusCode; {
		case s == http.StatusTooManyRequests, s == http.StatusServiceUnavailable:
			return true, nil
		case what == RefreshToken:
			return s >= 500 && s != http.StatusNotImplemented, nil
		}
		return false, nil
	}
}

// notSent reports whether err says the connection was never made, so that
// no server saw the request.
func notSent(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// Backoff is retryablehttp's exponential backoff, which honours a
// Retry-After header, capped at hi: a server may ask for an hour.
func Backoff(lo, hi time.Duration, attempt int, resp *http.Response) time.Duration {
	return min(retryablehttp.DefaultBackoff(lo, hi, attempt, resp), hi)
}

// New returns a go-retryablehttp client over hc that retries as check says
// up to retryMax times, waiting from lo to hi between tries. The last
// answer is returned as it is, for the caller (x/oauth2, say) to read the
// server's error from it.
func New(hc *http.Client, check retryablehttp.CheckRetry, retryMax int, lo, hi time.Duration) *retryablehttp.Client {
	return &retryablehttp.Client{
		HTTPClient:   hc,
		RetryWaitMin: lo,
		RetryWaitMax: max(lo, hi),
		RetryMax:     retryMax,
		CheckRetry:   check,
		Backoff:      Backoff,
		ErrorHandler: retryablehttp.PassthroughErrorHandler,
	}
}
