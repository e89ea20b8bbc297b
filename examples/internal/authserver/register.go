package authserver

import (
	"encoding/json"
	"net/http"
	"slices"
)

// registration is the part of RFC 7591 §2 client metadata the server reads
// and returns.
type registration struct {
	ClientID                string   `json:"client_id,omitempty"`
	ClientSecret            string   `json:"client_secret,omitempty"`
	RedirectURIs            []string `json:"redirect_uris"`
	TokenEndpointAuthMethod string   `json:"token_endpoint_auth_method,omitempty"`
	GrantTypes              []string `json:"grant_types,omitempty"`
	ClientName              string   `json:"client_name,omitempty"`
}

// serveRegister is the RFC 7591 §3 client registration endpoint.
func (s *Server) serveRegister(w http.ResponseWriter, r *http.Request) {
	var reg registration
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10)).Decode(&reg); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_client_metadata", "error_description": err.Error()})
		return
	}
	if len(reg.RedirectURIs) == 0 {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_redirect_uri", "error_description": "redirect_uris is required"})
		return
	}
	switch reg.TokenEndpointAuthMethod {
	case "":
		reg.TokenEndpointAuthMethod = "client_secret_basic" // RFC 7591 §2 default
	case "client_secret_basic", "client_secret_post", "none":
	default:
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_client_metadata", "error_description": "unsupported token_endpoint_auth_method"})
		return
	}
	c := &Client{ID: "client-" + secret()[:16], AuthMethod: reg.TokenEndpointAuthMethod, RedirectURIs: slices.Clone(reg.RedirectURIs)}
	if c.AuthMethod != "none" {
		c.Secret = secret()
	}
	s.mu.Lock()
	s.clients[c.ID] = c
	s.stats.Registrations++
	s.mu.Unlock()
	s.observe(Event{Kind: "register", Detail: c.AuthMethod})
	reg.ClientID, reg.ClientSecret = c.ID, c.Secret
	writeJSON(w, http.StatusCreated, reg)
}
