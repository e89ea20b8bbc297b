package stepup

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"testing"

	"github.com/hashicorp/go-retryablehttp"
	"github.com/stretchr/testify/assert"
	"golang.org/x/oauth2"
)

func TestChallengeError(t *testing.T) {
	tok := &oauth2.Token{AccessToken: "at-SECRET", RefreshToken: "rt-SECRET"}
	cause := fmt.Errorf("consent page closed with %s: %w", tok.AccessToken, ErrDeclined)
	e := &ChallengeError{
		Status:    http.StatusForbidden,
		Challenge: OAuthChallenge{Scheme: SchemeBearer, Error: ErrorInsufficientScope, Scope: Scopes{"files:write"}},
		Reason:    ReasonInsufficientScope,
		msg:       redact(cause.Error(), tok),
		err:       cause,
	}
	assert.Equal(t, "stepup: 403 insufficient_scope (insufficient scope): consent page closed with [REDACTED]: stepup: authorization declined", e.Error())
	assert.ErrorIs(t, e, ErrDeclined)
	assert.Same(t, cause, errors.Unwrap(e))
	assert.NotContains(t, fmt.Sprintf("%#v", e), "SECRET")
	assert.NotContains(t, fmt.Sprintf("%+v", e), "SECRET")

	bare := &ChallengeError{Status: 401, Reason: ReasonAuthorizationRequired, msg: "no", err: errors.New("no")}
	assert.Equal(t, "stepup: 401 challenge (authorization required): no", bare.Error())
	assert.NotErrorIs(t, bare, ErrDeclined)
	bearer := &ChallengeError{Status: 403, Challenge: OAuthChallenge{Scheme: "Bearer", Scope: Scopes{"a"}}, Reason: ReasonInsufficientScope, msg: "x", err: ErrExhausted}
	assert.Equal(t, "stepup: 403 Bearer challenge (insufficient scope): x", bearer.Error())
	assert.ErrorIs(t, bearer, ErrExhausted)

	// A challenge declined on an earlier request is a refusal too.
	assert.ErrorIs(t, errDeclinedEarlier, ErrDeclined)
}

func TestRedact(t *testing.T) {
	tok := &oauth2.Token{AccessToken: "AT", RefreshToken: "RT"}
	assert.Equal(t, "[REDACTED] and [REDACTED], twice [REDACTED]", redact("AT and RT, twice AT", tok, nil))
	assert.Equal(t, "nothing", redact("nothing", &oauth2.Token{}))

	plain := errors.New("plain")
	assert.Same(t, plain, redactError(plain, tok), "nothing to redact: the error as it was")
	red := redactError(fmt.Errorf("bad AT: %w", plain), tok)
	assert.Equal(t, "bad [REDACTED]: plain", red.Error())
	assert.ErrorIs(t, red, plain)
}

// CheckRetry never retries a ChallengeError, wherever it sits in the chain,
// and leaves everything else to the wrapped policy.
func TestCheckRetry(t *testing.T) {
	ctx := context.Background()
	esc := &url.Error{Op: "Post", URL: "https://x", Err: &ChallengeError{err: ErrDeclined}}
	var nextCalls int
	next := func(ctx context.Context, resp *http.Response, err error) (bool, error) {
		nextCalls++
		return true, nil
	}
	retry, err := CheckRetry(next)(ctx, nil, esc)
	assert.False(t, retry)
	assert.ErrorIs(t, err, ErrDeclined)
	assert.Zero(t, nextCalls)

	retry, err = CheckRetry(next)(ctx, nil, errors.New("connection reset"))
	assert.True(t, retry)
	assert.NoError(t, err)
	assert.Equal(t, 1, nextCalls)

	// nil means retryablehttp's default: a 503 is retried, a 403 is not.
	retry, _ = CheckRetry(nil)(ctx, &http.Response{StatusCode: http.StatusServiceUnavailable}, nil)
	assert.True(t, retry)
	retry, _ = CheckRetry(nil)(ctx, &http.Response{StatusCode: http.StatusForbidden}, nil)
	assert.False(t, retry)
	var _ retryablehttp.CheckRetry = CheckRetry(nil)
}
