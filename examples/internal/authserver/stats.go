package authserver

import "maps"

// Stats counts what the server was asked.
type Stats struct {
	// ConsentPrompts counts the authorization requests that reached the
	// resource owner: each is one consent screen shown to a person.
	ConsentPrompts int
	// Declined counts the prompts the resource owner refused.
	Declined int
	// TokenRequests counts token requests by grant_type, refused ones too.
	TokenRequests map[string]int
	// Registrations counts dynamic client registrations.
	Registrations int
	// ReusedRefreshTokens counts refresh requests with a rotated-out
	// refresh token; each revoked its grant.
	ReusedRefreshTokens int
}

// Stats returns the counts so far.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stats
	st.TokenRequests = maps.Clone(s.stats.TokenRequests)
	return st
}

// Refreshes returns how many refresh_token grant requests were made.
func (st Stats) Refreshes() int { return st.TokenRequests["refresh_token"] }

// CodeExchanges returns how many authorization_code grant requests were
// made.
func (st Stats) CodeExchanges() int { return st.TokenRequests["authorization_code"] }
