package oauthtest

import (
	"maps"
	"net/url"
	"slices"
)

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
	// AccessTokens counts the access tokens issued.
	AccessTokens int
	// MetadataRequests counts requests for the server's metadata.
	MetadataRequests int
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

// requestLog keeps every request, in order, for tests that check what a
// client sent.
type requestLog struct {
	authorize     []url.Values     // authorization requests' queries (a pushed one's form)
	pushes        []url.Values     // pushed authorization requests' forms
	tokens        []TokenRequest   // token requests
	registrations []map[string]any // registration requests' client metadata
}

// AuthorizationRequests returns the query of every authorization request
// received, the pushed form for one by request_uri.
func (s *Server) AuthorizationRequests() []url.Values {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.log.authorize)
}

// PushedRequests returns the form of every pushed authorization request.
func (s *Server) PushedRequests() []url.Values {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.log.pushes)
}

// TokenRequests returns every token request received.
func (s *Server) TokenRequests() []TokenRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.log.tokens)
}

// GrantTypes returns the grant_type of every token request, in order.
func (s *Server) GrantTypes() []string {
	var out []string
	for _, tr := range s.TokenRequests() {
		out = append(out, tr.Form.Get("grant_type"))
	}
	return out
}

// RegistrationRequests returns the client metadata of every registration
// request that registered a client.
func (s *Server) RegistrationRequests() []map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.log.registrations)
}

// Register adds a client, as an administrator would.
func (s *Server) Register(c Client) {
	c.RedirectURIs = slices.Clone(c.RedirectURIs)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.clients[c.ID] = &c
}
