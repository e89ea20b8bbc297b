package interim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// maxMetadata bounds a metadata document or registration response.
const maxMetadata = 1 << 20

// resourceMetadata is the part of an RFC 9728 §2 document used here.
type resourceMetadata struct {
	Resource             string   `json:"resource"`
	AuthorizationServers []string `json:"authorization_servers"`
	ScopesSupported      []string `json:"scopes_supported"`
}

// serverMetadata is the part of an RFC 8414 §2 document used here.
type serverMetadata struct {
	Issuer                            string   `json:"issuer"`
	AuthorizationEndpoint             string   `json:"authorization_endpoint"`
	TokenEndpoint                     string   `json:"token_endpoint"`
	RegistrationEndpoint              string   `json:"registration_endpoint"`
	ScopesSupported                   []string `json:"scopes_supported"`
	TokenEndpointAuthMethodsSupported []string `json:"token_endpoint_auth_methods_supported"`
	CodeChallengeMethodsSupported     []string `json:"code_challenge_methods_supported"`
	IssParameterSupported             bool     `json:"authorization_response_iss_parameter_supported"`
	ClientIDMetadataDocumentSupported bool     `json:"client_id_metadata_document_supported"`
}

// discovered is what discovery learnt for one escalation.
type discovered struct {
	resource string // the RFC 8707 resource to send: the metadata's, or the MCP server's without metadata
	scopes   []string
	as       serverMetadata
	legacy   bool // no protected resource metadata: the 2025-03-26 MCP fallbacks
}

// errNotFound says a metadata URL answered 404 or similar: try the next.
var errNotFound = errors.New("no metadata there")

// discover finds the authorization server for resource (RFC 9728 §3, then
// RFC 8414 §3 and OpenID Connect discovery), starting from the challenge's
// resource_metadata when it has one.
func (e *Escalator) discover(ctx context.Context, resource, metadataURL string) (*discovered, error) {
	ru, err := url.Parse(resource)
	if err != nil {
		return nil, fmt.Errorf("resource %q: %w", resource, err)
	}
	origin := ru.Scheme + "://" + ru.Host
	prm, err := e.resourceMetadata(ctx, ru, origin, metadataURL)
	if errors.Is(err, errNotFound) {
		// MCP 2025-03-26: no protected resource metadata; the MCP server's
		// origin is the authorization server's base URL.
		return e.legacy(ctx, resource, origin)
	}
	if err != nil {
		return nil, err
	}
	if len(prm.AuthorizationServers) == 0 {
		return nil, errors.New("protected resource metadata lists no authorization_servers")
	}
	issuer := prm.AuthorizationServers[0]
	as, err := e.serverMetadata(ctx, issuer)
	if err != nil {
		return nil, err
	}
	return &discovered{resource: prm.Resource, scopes: prm.ScopesSupported, as: *as}, nil
}

// resourceMetadata fetches the RFC 9728 document: the one the challenge
// named, else at the path-inserted well-known URI, else at the root one,
// and checks that it is about resource (RFC 9728 §3.3).
func (e *Escalator) resourceMetadata(ctx context.Context, ru *url.URL, origin, named string) (*resourceMetadata, error) {
	type candidate struct{ url, want string }
	var cands []candidate
	if named != "" {
		cands = append(cands, candidate{named, ""})
	}
	if p := strings.TrimSuffix(ru.EscapedPath(), "/"); p != "" {
		cands = append(cands, candidate{origin + "/.well-known/oauth-protected-resource" + p, ru.String()})
	}
	cands = append(cands, candidate{origin + "/.well-known/oauth-protected-resource", origin})
	for _, c := range cands {
		var doc resourceMetadata
		err := e.getJSON(ctx, c.url, &doc)
		if errors.Is(err, errNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if !resourceMatches(doc.Resource, c.want, ru) {
			return nil, fmt.Errorf("protected resource metadata at %s is for %q, not for %s (RFC 9728 §3.3)", c.url, doc.Resource, ru)
		}
		return &doc, nil
	}
	return nil, errNotFound
}

// resourceMatches checks a metadata document's resource: identical to want
// for a well-known URI; for a document the challenge named, the same origin
// with the resource's path equal to or under the document's.
func resourceMatches(got, want string, ru *url.URL) bool {
	trim := func(s string) string { return strings.TrimSuffix(s, "/") }
	if want != "" {
		return trim(got) == trim(want) || trim(got) == trim(ru.String())
	}
	gu, err := url.Parse(got)
	if err != nil || !strings.EqualFold(gu.Scheme, ru.Scheme) || !strings.EqualFold(gu.Host, ru.Host) {
		return false
	}
	gp, rp := trim(gu.EscapedPath()), trim(ru.EscapedPath())
	return gp == "" || rp == gp || strings.HasPrefix(rp, gp+"/")
}

// serverMetadata fetches the authorization server's metadata: RFC 8414 then
// OpenID Connect discovery, path-inserted forms first, and checks the
// issuer (RFC 8414 §3.3).
func (e *Escalator) serverMetadata(ctx context.Context, issuer string) (*serverMetadata, error) {
	iu, err := url.Parse(issuer)
	if err != nil {
		return nil, fmt.Errorf("issuer %q: %w", issuer, err)
	}
	origin := iu.Scheme + "://" + iu.Host
	p := strings.TrimSuffix(iu.EscapedPath(), "/")
	urls := []string{
		origin + "/.well-known/oauth-authorization-server" + p,
		origin + "/.well-known/openid-configuration" + p,
	}
	if p != "" {
		urls = append(urls, origin+p+"/.well-known/openid-configuration")
	}
	for _, u := range urls {
		var doc serverMetadata
		err := e.getJSON(ctx, u, &doc)
		if errors.Is(err, errNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if strings.TrimSuffix(doc.Issuer, "/") != strings.TrimSuffix(issuer, "/") {
			return nil, fmt.Errorf("metadata at %s names issuer %q, not %q (RFC 8414 §3.3)", u, doc.Issuer, issuer)
		}
		return &doc, nil
	}
	return nil, fmt.Errorf("no authorization server metadata for %s", issuer)
}

// legacy applies the MCP 2025-03-26 fallbacks: metadata at the root of the
// MCP server's origin, else the default endpoints there.
func (e *Escalator) legacy(ctx context.Context, resource, origin string) (*discovered, error) {
	d := &discovered{resource: resource, legacy: true}
	err := e.getJSON(ctx, origin+"/.well-known/oauth-authorization-server", &d.as)
	switch {
	case errors.Is(err, errNotFound):
		d.as = serverMetadata{
			Issuer:                origin,
			AuthorizationEndpoint: origin + "/authorize",
			TokenEndpoint:         origin + "/token",
			RegistrationEndpoint:  origin + "/register",
		}
	case err != nil:
		return nil, err
	}
	if d.as.CodeChallengeMethodsSupported == nil {
		// The 2025-03-26 revision required PKCE of every server.
		d.as.CodeChallengeMethodsSupported = []string{"S256"}
	}
	return d, nil
}

// getJSON fetches u into v. A 4xx answer is errNotFound.
func (e *Escalator) getJSON(ctx context.Context, u string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := e.httpClient().Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 400 && resp.StatusCode < 500 {
		return errNotFound
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxMetadata)).Decode(v); err != nil {
		return fmt.Errorf("GET %s: %w", u, err)
	}
	return nil
}
