package authserver

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
)

// clientCredentials is the client_credentials grant (RFC 6749 §4.4): a
// confidential client gets the scopes it asks, if the server knows them,
// for a resource the server serves (RFC 8707 §2), and no refresh token
// (RFC 6749 §4.4.3), offline_access or not. A request that names no
// resource gets the server's one resource, when it serves one only, as a
// server may apply a default (RFC 8707 §2): the go-sdk's client
// credentials handler sends none.
func (s *Server) clientCredentials(form url.Values, client *Client) (*tokenResponse, error) {
	if client.authMethod() == "none" {
		return nil, &tokenError{http.StatusBadRequest, "unauthorized_client", "a public client cannot use client_credentials"}
	}
	scopes := strings.Fields(form.Get("scope"))
	for _, sc := range scopes {
		if len(s.cfg.ScopesSupported) > 0 && !slices.Contains(s.cfg.ScopesSupported, sc) {
			return nil, &tokenError{http.StatusBadRequest, "invalid_scope", "unknown scope " + sc}
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	resource := form.Get("resource")
	if resource == "" && len(s.resources) == 1 {
		for r := range s.resources {
			resource = r
		}
	}
	if !s.resources[resource] {
		return nil, &tokenError{http.StatusBadRequest, "invalid_target", "unknown resource"}
	}
	resp := s.issueLocked(client.ID, scopes, resource, secret())
	if resp.RefreshToken != "" {
		delete(s.refresh, resp.RefreshToken)
		resp.RefreshToken = ""
	}
	return resp, nil
}
