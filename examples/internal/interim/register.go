package interim

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"

	"golang.org/x/oauth2"
)

// clientMetadata is the RFC 7591 §2 metadata sent and read back.
type clientMetadata struct {
	ClientID                string   `json:"client_id,omitempty"`
	ClientSecret            string   `json:"client_secret,omitempty"`
	ClientName              string   `json:"client_name,omitempty"`
	RedirectURIs            []string `json:"redirect_uris"`
	GrantTypes              []string `json:"grant_types,omitempty"`
	ResponseTypes           []string `json:"response_types,omitempty"`
	TokenEndpointAuthMethod string   `json:"token_endpoint_auth_method,omitempty"`
}

// registerDynamically registers a client (RFC 7591 §3.1), as a public
// client when the server allows it, else with the secret method it lists.
func (e *Escalator) registerDynamically(ctx context.Context, as *serverMetadata) (*registered, error) {
	if as.RegistrationEndpoint == "" {
		return nil, fmt.Errorf("%s offers no dynamic registration and no client is configured", as.Issuer)
	}
	method := "none"
	if s := as.TokenEndpointAuthMethodsSupported; len(s) > 0 && !slices.Contains(s, "none") {
		method = "client_secret_basic"
		if !slices.Contains(s, method) && slices.Contains(s, "client_secret_post") {
			method = "client_secret_post"
		}
	}
	name := e.cfg.ClientName
	if name == "" {
		name = "stepup example client"
	}
	body, _ := json.Marshal(clientMetadata{
		ClientName: name, RedirectURIs: []string{e.cfg.Receiver.RedirectURI()},
		GrantTypes: []string{"authorization_code", "refresh_token"}, ResponseTypes: []string{"code"},
		TokenEndpointAuthMethod: method,
	})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, as.RegistrationEndpoint, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := e.httpClient().Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("POST %s: %s", as.RegistrationEndpoint, resp.Status)
	}
	var got clientMetadata
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxMetadata)).Decode(&got); err != nil {
		return nil, fmt.Errorf("registration response: %w", err)
	}
	if got.ClientID == "" {
		return nil, fmt.Errorf("registration response without client_id")
	}
	if got.TokenEndpointAuthMethod != "" {
		method = got.TokenEndpointAuthMethod // RFC 7591 §3.2.1: the server may change it
	}
	c := &registered{id: got.ClientID, secret: got.ClientSecret, style: oauth2.AuthStyleInParams}
	if method == "client_secret_basic" {
		c.style = oauth2.AuthStyleInHeader
	}
	if method == "none" {
		c.secret = ""
	}
	return c, nil
}
