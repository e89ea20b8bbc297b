package stepup

import (
	"context"
	"time"

	"golang.org/x/oauth2"
)

// The defaults and limits, for tests that count what they bound.
const (
	DefaultMaxReplays        = defaultMaxReplays
	DefaultEscalationTimeout = defaultEscalationTimeout

	MaxChallengeHeaderBytes = maxChallengeHeaderBytes
	MaxChallenges           = maxChallenges
	MaxChallengeParams      = maxChallengeParams
	MaxEmptyListElements    = maxEmptyListElements

	SchemeBearer                        = schemeBearer
	SchemeDPoP                          = schemeDPoP
	ErrorInvalidRequest                 = "invalid_request"
	ErrorInvalidToken                   = codeInvalidToken
	ErrorInsufficientScope              = codeInsufficientScope
	ErrorInsufficientUserAuthentication = codeInsufficientUserAuthentication
	ErrorInsufficientClaims             = codeInsufficientClaims
	ErrorUseDPoPNonce                   = codeUseDPoPNonce
)

// The parser's errors but SyntaxError, whose fields the tests check.
type (
	LimitError = limitError
	ParamError = paramError
)

// ParseChallengeValues parses field lines without an http.Header around
// them.
func ParseChallengeValues(values ...string) ([]Challenge, error) {
	return parseChallengeValues(values...)
}

// Refresh returns a token newer than rejected, refreshing once for all
// callers if the source holds none, as a Transport does after a 401.
func (s *TokenSource) Refresh(ctx context.Context, rejected *oauth2.Token) (*oauth2.Token, error) {
	if err := s.load(ctx); err != nil {
		return nil, err
	}
	tok, gen, _ := s.current()
	if tok != nil && (rejected == nil || tok.AccessToken != rejected.AccessToken) {
		return tok, nil
	}
	if err := s.refreshFrom(ctx, gen); err != nil {
		return nil, err
	}
	tok, _, _ = s.current()
	return tok, nil
}

// SetExhaustedTTL changes the source's [WithExhaustedTTL] between
// requests, so that a test can let the guard's memory lapse mid-scenario;
// a user fixes it when making the source.
func (s *TokenSource) SetExhaustedTTL(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	WithExhaustedTTL(d)(s)
}

// SetEscalationTimeout changes the source's [WithEscalationTimeout] for the
// escalations started after it.
func (s *TokenSource) SetEscalationTimeout(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	WithEscalationTimeout(d)(s)
}
