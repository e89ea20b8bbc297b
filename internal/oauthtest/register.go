package oauthtest

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"slices"
	"time"
)

// registration is the part of RFC 7591 §2 client metadata the server reads
// and returns.
type registration struct {
	ClientID                string   `json:"client_id,omitempty"`
	ClientSecret            string   `json:"client_secret,omitempty"`
	ClientIDIssuedAt        int64    `json:"client_id_issued_at,omitempty"`
	ClientSecretExpiresAt   *int64   `json:"client_secret_expires_at,omitempty"`
	RedirectURIs            []string `json:"redirect_uris"`
	TokenEndpointAuthMethod string   `json:"token_endpoint_auth_method,omitempty"`
	GrantTypes              []string `json:"grant_types,omitempty"`
	ClientName              string   `json:"client_name,omitempty"`
	ApplicationType         string   `json:"application_type,omitempty"`
}

func registrationError(w http.ResponseWriter, code, desc string) {
	writeJSON(w, http.StatusBadRequest, map[string]string{"error": code, "error_description": desc})
}

// serveRegister is the RFC 7591 §3 client registration endpoint.
func (s *Server) serveRegister(w http.ResponseWriter, r *http.Request) {
	if s.NoRegistration {
		http.NotFound(w, r)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 64<<10))
	var raw map[string]any
	var reg registration
	if err == nil {
		err = json.Unmarshal(body, &raw)
	}
	if err == nil {
		err = json.NewDecoder(bytes.NewReader(body)).Decode(&reg)
	}
	if err != nil {
		registrationError(w, "invalid_client_metadata", err.Error())
		return
	}
	if len(reg.RedirectURIs) == 0 {
		registrationError(w, "invalid_redirect_uri", "redirect_uris is required")
		return
	}
	for _, u := range reg.RedirectURIs {
		if pu, err := url.Parse(u); err != nil || !pu.IsAbs() || pu.Fragment != "" {
			registrationError(w, "invalid_redirect_uri", "not an absolute URI without fragment: "+u)
			return
		}
	}
	if reg.TokenEndpointAuthMethod == "" {
		reg.TokenEndpointAuthMethod = "client_secret_basic" // RFC 7591 §2 default
	}
	if !slices.Contains(s.methods(), reg.TokenEndpointAuthMethod) {
		registrationError(w, "invalid_client_metadata", "unsupported token_endpoint_auth_method")
		return
	}
	// OpenID Connect Dynamic Client Registration 1.0 §2: web is the
	// default application_type; only a native client's loopback redirect
	// URI may change its port (RFC 8252 §7.3).
	c := &Client{ID: "client-" + secret()[:16], AuthMethod: reg.TokenEndpointAuthMethod,
		RedirectURIs: slices.Clone(reg.RedirectURIs), Web: reg.ApplicationType != "native"}
	if c.AuthMethod != "none" {
		c.Secret = secret()
	}
	s.mu.Lock()
	s.clients[c.ID] = c
	s.stats.Registrations++
	s.log.registrations = append(s.log.registrations, raw)
	s.mu.Unlock()
	s.observe(Event{Kind: "register", Detail: c.AuthMethod})
	reg.ClientID, reg.ClientSecret, reg.ClientIDIssuedAt = c.ID, c.Secret, time.Now().Unix()
	if c.Secret != "" {
		never := int64(0)
		reg.ClientSecretExpiresAt = &never
	}
	writeJSON(w, http.StatusCreated, reg)
}
