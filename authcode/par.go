package authcode

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"golang.org/x/oauth2"
)

// maxPushedBody bounds a pushed authorization response; real ones are a
// few hundred bytes.
const maxPushedBody = 64 << 10

// pushedResponse is a pushed authorization response (RFC 9126 §2.2) or
// an error response (§2.3).
type pushedResponse struct {
	RequestURI       string `json:"request_uri"`
	Error            string `json:"error"`
	ErrorDescription string `json:"error_description"`
	ErrorURI         string `json:"error_uri"`
}

// push sends the parameters of authURL, an authorization request, to the
// server's pushed authorization request endpoint, authenticated as at the
// token endpoint (RFC 9126 §2.1), and returns the URL that sends the
// person's browser with the request_uri the server answered (RFC 9126
// §4). The request is not retried: it has no effect worth repeating, and
// the person is waiting.
func (f *flow) push(ctx context.Context, hc *http.Client, authURL string) (string, error) {
	u, err := url.Parse(authURL)
	if err != nil {
		return "", fmt.Errorf("authcode: authorization request: %w", err)
	}
	// The endpoint's own query (a tenant's policy, say) stays on the URL
	// the browser opens; the rest is the request, and is pushed.
	own := url.Values{}
	if e, err := url.Parse(f.as.AuthorizationEndpoint); err == nil {
		own = e.Query()
	}
	form := u.Query()
	for name := range own {
		form.Del(name)
	}
	basic := f.cfg.ClientSecret != "" && f.cfg.Endpoint.AuthStyle == oauth2.AuthStyleInHeader
	if f.cfg.ClientSecret != "" && !basic {
		form.Set("client_secret", f.cfg.ClientSecret)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, f.as.PushedAuthorizationRequestEndpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return "", fmt.Errorf("authcode: pushed authorization request endpoint: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	if basic {
		// RFC 6749 §2.3.1: the credentials are form-encoded first.
		req.SetBasicAuth(url.QueryEscape(f.cfg.ClientID), url.QueryEscape(f.cfg.ClientSecret))
	}
	resp, err := hc.Do(req)
	if err != nil {
		return "", fmt.Errorf("authcode: pushed authorization request: %w", err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxPushedBody+1))
	if err != nil {
		return "", fmt.Errorf("authcode: pushed authorization request: reading answer: %w", err)
	}
	var pr pushedResponse
	jsonErr := json.Unmarshal(raw, &pr)
	if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusOK {
		if jsonErr != nil || pr.Error == "" {
			return "", &AuthorizationError{StatusCode: resp.StatusCode, Description: "answer is not an error response"}
		}
		return "", &AuthorizationError{StatusCode: resp.StatusCode, Code: pr.Error, Description: pr.ErrorDescription, URI: pr.ErrorURI}
	}
	if len(raw) > maxPushedBody || jsonErr != nil || pr.RequestURI == "" {
		return "", &AuthorizationError{StatusCode: resp.StatusCode, Description: "the pushed authorization response has no request_uri"}
	}
	// RFC 9126 §4: the browser carries client_id and request_uri, and
	// nothing else of the request.
	own.Set("client_id", f.cfg.ClientID)
	own.Set("request_uri", pr.RequestURI)
	u.RawQuery = own.Encode()
	return u.String(), nil
}
