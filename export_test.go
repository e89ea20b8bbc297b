package stepup

import "time"

// The defaults, for tests that count what they bound.
const (
	DefaultMaxReplays        = defaultMaxReplays
	DefaultEscalationTimeout = defaultEscalationTimeout
)

// SetExhaustedTTL changes the source's [WithExhaustedTTL] between
// requests, so that a test can let the guard's memory lapse mid-scenario;
// a user fixes it when making the source.
func (s *TokenSource) SetExhaustedTTL(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	WithExhaustedTTL(d)(s)
	if d <= 0 {
		s.exhaustedTTL = defaultExhaustedTTL
	}
}

// SetEscalationTimeout changes the source's [WithEscalationTimeout] for the
// escalations started after it.
func (s *TokenSource) SetEscalationTimeout(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	WithEscalationTimeout(d)(s)
	if d <= 0 {
		s.escalationTimeout = defaultEscalationTimeout
	}
}
