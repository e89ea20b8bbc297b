package stepup

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/hashicorp/go-retryablehttp"
	"golang.org/x/oauth2"
)

// Sentinel errors a [*ChallengeError] wraps, to tell with [errors.Is] why a
// challenge was not cured.
var (
	// ErrDeclined says that the user or the authorization server refused
	// an escalation, now or within [WithExhaustedTTL] before for the
	// same challenge. Return an error wrapping it from an [Escalator] when
	// the user refused (access_denied, RFC 9470
	// unmet_authentication_requirements).
	ErrDeclined = errors.New("stepup: authorization declined")

	// ErrExhausted says that a challenge came back after its remedy: the
	// same request drew it again with the token the remedy produced (RFC
	// 9110 §15.5.2), or it did so on an earlier request within
	// [WithExhaustedTTL] and the granted scopes have not changed
	// since. Another remedy would only ask the user again in a loop.
	ErrExhausted = errors.New("stepup: challenge came back after its remedy")

	// ErrReplayLimit says that the request drew a challenge after it had
	// been replayed [Transport.MaxReplays] times (RFC 9110 §9.2.2: no
	// retry of a failed automatic retry without end).
	ErrReplayLimit = errors.New("stepup: replay limit reached")

	// ErrBodyNotReplayable says that the challenge was remedied but the
	// request could not be replayed, because its body was consumed and
	// it has no GetBody (see [Transport.BufferBody]). The new token is in
	// place: send the request again.
	ErrBodyNotReplayable = errors.New("stepup: authorization renewed but the request body cannot be replayed; send the request again")

	// ErrRefreshFailed says that refreshing a rejected token failed for a
	// reason that may pass (the token endpoint answered 5xx or could not
	// be reached, after retries) or that no new authorization can cure
	// (an invalid_client, say). The user is not asked anything; the next
	// request tries to refresh again.
	ErrRefreshFailed = errors.New("stepup: token refresh failed")
)

// Errors of the [TokenSource].
var (
	// ErrNoToken is returned by [TokenSource.Token] while the source holds
	// no token yet: the first authorization has not happened.
	ErrNoToken = errors.New("stepup: no token yet")
	// ErrNoRefreshToken says that a rejected token could not be refreshed:
	// it carries no refresh token, or the source has no way to refresh
	// (see [WithOAuth2Config], [WithRefreshFunc] and [Grant.Refresh]).
	ErrNoRefreshToken = errors.New("stepup: no refresh token")
	// ErrInvalidGrant says that the authorization server refused a
	// refresh token (invalid_grant, RFC 6749 §5.2): it expired, was
	// revoked or was used before. The grant is gone; a [Transport] asks
	// the source's [Escalator] for a new authorization.
	ErrInvalidGrant = errors.New("stepup: refresh token refused (invalid_grant)")
)

// Errors of the challenge parser.
var (
	// ErrMalformedChallenge is matched by the [SyntaxError] of a challenge
	// that does not follow RFC 9110 §11. Such a challenge is never acted on.
	ErrMalformedChallenge = errors.New("stepup: malformed challenge")
	// ErrChallengeLimit is matched by the error of [ParseChallenges] when
	// a header exceeds one of its limits.
	ErrChallengeLimit = errors.New("stepup: challenge header over limit")
	// ErrNotOAuth is returned by [Challenge.OAuth] for schemes other than
	// Bearer and DPoP.
	ErrNotOAuth = errors.New("stepup: not an OAuth challenge")
)

var errNoSource = errors.New("stepup: Transport.Source is nil")

// errFlightExited is the error of a flight whose function never returned:
// it ended its goroutine with runtime.Goexit, as t.FailNow does.
var errFlightExited = errors.New("stepup: the remedy ended its goroutine without returning (runtime.Goexit)")

// ChallengeError is the error [Transport.RoundTrip] returns when it
// answered a challenge and could not cure it: the [Escalator] failed or the
// user declined, a refresh failed, or the guard stopped a remedy that had
// been tried already. It wraps the cause, one of the sentinel errors of
// this package or the Escalator's error, so that [errors.Is](err,
// [ErrDeclined]) tells a refusal from a failure. Its message never
// contains a token, and [CheckRetry] never retries it.
// The challenged response has been closed.
type ChallengeError struct {
	// Status is the status code of the challenged response.
	Status int
	// Challenge is the challenge as received; its Error is "" when the
	// header carried no error code.
	Challenge OAuthChallenge
	// Reason is what stepup concluded the challenge asks for.
	Reason Reason

	msg string // the cause's message with tokens redacted
	err error
}

// Error says which challenge was not cured and why, with the cause's
// message stripped of tokens.
func (e *ChallengeError) Error() string {
	return fmt.Sprintf("stepup: %d %s (%s): %s", e.Status, e.challengeName(), e.Reason, e.msg)
}

func (e *ChallengeError) challengeName() string {
	if e.Challenge.Error != "" {
		return e.Challenge.Error
	}
	if e.Challenge.Scheme != "" {
		return e.Challenge.Scheme + " challenge"
	}
	return "challenge"
}

// GoString keeps %#v from printing the cause, whose text may hold a token.
func (e *ChallengeError) GoString() string {
	return fmt.Sprintf("&stepup.ChallengeError{Status: %d, Error: %q, Scope: %q, Reason: %s, Cause: %q}",
		e.Status, e.Challenge.Error, e.Challenge.Scope.String(), e.Reason, e.msg)
}

// Unwrap returns the cause.
func (e *ChallengeError) Unwrap() error { return e.err }

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
// [retryablehttp.DefaultRetryPolicy]) so that a [*ChallengeError] is never
// retried: each retry of a declined escalation would ask the user again,
// and a refresh has had its own retries. Other outcomes are left to next.
func CheckRetry(next retryablehttp.CheckRetry) retryablehttp.CheckRetry {
	if next == nil {
		next = retryablehttp.DefaultRetryPolicy
	}
	return func(ctx context.Context, resp *http.Response, err error) (bool, error) {
		var e *ChallengeError
		if errors.As(err, &e) {
			return false, err
		}
		return next(ctx, resp, err)
	}
}
