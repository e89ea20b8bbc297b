package oauthtest

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
)

// clientCredentials is the client_credentials grant (RFC 6749 §4.4): a
// confidential client gets the scopes it asks, if the server knows them,
// for a resource the server serves (RFC 8707 §2), and no refresh token
// (RFC 6749 §4.4.3), offline_access or not, unless
// RefreshWithClientGrants says otherwise. A request that names no
// resource gets the server's one resource, when it serves one only, as a
// server may apply a default (RFC 8707 §2): the go-sdk's client
// credentials handler sends none.
func (s *Server) clientCredentials(form url.Values, client *Client) (*tokenResponse, error) {
	if client.authMethod() == "none" {
		return nil, &tokenError{http.StatusBadRequest, "unauthorized_client", "a public client cannot use client_credentials"}
	}
	scopes := strings.Fields(form.Get("scope"))
	if supported := s.scopes(); len(supported) > 0 {
		for _, sc := range scopes {
			if !slices.Contains(supported, sc) {
				return nil, &tokenError{http.StatusBadRequest, "invalid_scope", "unknown scope " + sc}
			}
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	resource, err := s.grantResource(form)
	if err != nil {
		return nil, err
	}
	return s.issueLocked(client.ID, scopes, scopes, resource, "", "", secret(), s.RefreshWithClientGrants), nil
}
