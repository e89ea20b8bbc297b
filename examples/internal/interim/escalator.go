// Package interim is a stand-in, for the examples module only, for the
// authorization-code Escalator that stepup's own package authcode will
// ship. It lets the conformance client, the demo, the end-to-end tests and
// the comparison run real authorization code flows today. When authcode
// lands, each caller replaces its one call to [New] with authcode's
// constructor and this package is deleted.
//
// What it does, per escalation: RFC 9728 protected resource metadata (the
// challenge's resource_metadata, else the path-inserted then the root
// well-known URI, its resource checked), RFC 8414 / OpenID Connect
// authorization server metadata (issuer checked), the MCP 2025-03-26
// fallbacks when there is no resource metadata, a client (pre-registered, a
// client ID metadata document URL, or RFC 7591 dynamic registration, kept
// per issuer), then an authorization request with PKCE S256, state and the
// RFC 8707 resource, and the code exchange through x/oauth2. access_denied
// is [stepup.ErrDeclined].
package interim

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"sync"
	"time"

	"golang.org/x/oauth2"

	"github.com/stepup-go/stepup"
)

// Config configures an [Escalator]. The zero value uses dynamic client
// registration and the headless receiver.
type Config struct {
	// ClientID and ClientSecret are a pre-registered client. Empty
	// ClientID means: a client ID metadata document when ClientIDURL is
	// set and the server supports it, else dynamic registration.
	ClientID, ClientSecret string

	// ClientIDURL is an https URL to use as client_id where the
	// authorization server advertises client_id_metadata_document_supported.
	ClientIDURL string

	// ClientName is sent in dynamic registrations.
	ClientName string

	// Receiver gets the authorization response. Nil means [Headless] with
	// HTTPClient.
	Receiver Receiver

	// HTTPClient makes the metadata, registration and token requests. Nil
	// means a client with a 30-second timeout.
	HTTPClient *http.Client
}

// Escalator is a [stepup.Escalator] that runs the authorization code flow.
// It is safe for concurrent use.
type Escalator struct {
	cfg     Config
	client  *http.Client
	mu      sync.Mutex
	clients map[string]*registered // by issuer
}

// New returns an Escalator for cfg.
func New(cfg Config) *Escalator {
	e := &Escalator{cfg: cfg, clients: make(map[string]*registered)}
	e.client = cfg.HTTPClient
	if e.client == nil {
		e.client = &http.Client{Timeout: 30 * time.Second}
	}
	if e.cfg.Receiver == nil {
		e.cfg.Receiver = &Headless{Client: e.client}
	}
	return e
}

func (e *Escalator) httpClient() *http.Client { return e.client }

// Escalate implements [stepup.Escalator].
func (e *Escalator) Escalate(ctx context.Context, req *stepup.EscalationRequest) (*stepup.Grant, error) {
	d, err := e.discover(ctx, req.Resource, req.ResourceMetadata)
	if err != nil {
		return nil, fmt.Errorf("discovery: %w", err)
	}
	if !slices.Contains(d.as.CodeChallengeMethodsSupported, "S256") {
		return nil, errors.New("the authorization server does not list PKCE S256 (code_challenge_methods_supported)")
	}
	c, err := e.register(ctx, &d.as)
	if err != nil {
		return nil, fmt.Errorf("client registration: %w", err)
	}
	scopes, chose := req.Scopes, stepup.Scopes(nil)
	if len(scopes) == 0 && len(d.scopes) > 0 {
		// MCP scope selection: no scope challenged or granted yet, so all
		// of scopes_supported (RFC 9728 §2).
		scopes = stepup.Scopes(nil).Union(d.scopes)
		chose = scopes
	}
	cfg := &oauth2.Config{
		ClientID:     c.id,
		ClientSecret: c.secret,
		Endpoint:     oauth2.Endpoint{AuthURL: d.as.AuthorizationEndpoint, TokenURL: d.as.TokenEndpoint, AuthStyle: c.style},
		Scopes:       scopes,
	}
	code, verifier, err := e.authorize(ctx, cfg, d, req)
	if err != nil {
		return nil, err
	}
	tok, err := cfg.Exchange(context.WithValue(ctx, oauth2.HTTPClient, e.client), code,
		oauth2.VerifierOption(verifier), oauth2.SetAuthURLParam("resource", d.resource))
	if err != nil {
		return nil, fmt.Errorf("code exchange: %w", err)
	}
	refreshCfg := *cfg
	return &stepup.Grant{Token: tok, Scopes: chose, Refresh: stepup.RefreshWithConfig(&refreshCfg), Issuer: d.as.Issuer}, nil
}

// authorize sends the person to the authorization endpoint and returns the
// code and the PKCE verifier to redeem it with, having checked state and iss
// (RFC 9207). cfg.RedirectURL is set to the receiver's.
func (e *Escalator) authorize(ctx context.Context, cfg *oauth2.Config, d *discovered, req *stepup.EscalationRequest) (code, verifier string, err error) {
	verifier = oauth2.GenerateVerifier()
	state := oauth2.GenerateVerifier()[:22]
	opts := []oauth2.AuthCodeOption{oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("resource", d.resource)}
	if len(req.ACRValues) > 0 {
		opts = append(opts, oauth2.SetAuthURLParam("acr_values", stepup.Scopes(req.ACRValues).String()))
	}
	if req.MaxAge != stepup.NoMaxAge {
		opts = append(opts, oauth2.SetAuthURLParam("max_age", strconv.Itoa(req.MaxAge)))
	}
	if req.Claims != nil {
		opts = append(opts, oauth2.SetAuthURLParam("claims", string(req.Claims)))
	}
	redirect, params, err := e.cfg.Receiver.Receive(ctx, func(redirectURI string) string {
		cfg.RedirectURL = redirectURI
		return cfg.AuthCodeURL(state, opts...)
	})
	if err != nil {
		return "", "", fmt.Errorf("authorization: %w", err)
	}
	cfg.RedirectURL = redirect
	if params.Get("state") != state {
		return "", "", errors.New("authorization response: state does not match (RFC 6749 §10.12)")
	}
	if iss := params.Get("iss"); iss != "" && iss != d.as.Issuer || iss == "" && d.as.IssParameterSupported {
		return "", "", fmt.Errorf("authorization response: iss %q is not the issuer %q (RFC 9207)", iss, d.as.Issuer)
	}
	if ec := params.Get("error"); ec != "" {
		err := fmt.Errorf("authorization response: %s: %s", ec, params.Get("error_description"))
		if ec == "access_denied" || ec == "unmet_authentication_requirements" {
			err = fmt.Errorf("%w: %w", stepup.ErrDeclined, err)
		}
		return "", "", err
	}
	if code = params.Get("code"); code == "" {
		return "", "", errors.New("authorization response without code")
	}
	return code, verifier, nil
}

// registered is a client the Escalator uses at one issuer.
type registered struct {
	id, secret string
	style      oauth2.AuthStyle
}

// register returns the client to use at the authorization server: the
// pre-registered one, a client ID metadata document URL, or a dynamically
// registered one (RFC 7591), kept per issuer.
func (e *Escalator) register(ctx context.Context, as *serverMetadata) (*registered, error) {
	e.mu.Lock()
	c := e.clients[as.Issuer]
	e.mu.Unlock()
	if c != nil {
		return c, nil
	}
	switch {
	case e.cfg.ClientID != "":
		c = &registered{id: e.cfg.ClientID, secret: e.cfg.ClientSecret, style: oauth2.AuthStyleInParams}
		if c.secret != "" && (len(as.TokenEndpointAuthMethodsSupported) == 0 || slices.Contains(as.TokenEndpointAuthMethodsSupported, "client_secret_basic")) {
			c.style = oauth2.AuthStyleInHeader
		}
	case e.cfg.ClientIDURL != "" && as.ClientIDMetadataDocumentSupported:
		c = &registered{id: e.cfg.ClientIDURL, style: oauth2.AuthStyleInParams}
	default:
		var err error
		if c, err = e.registerDynamically(ctx, as); err != nil {
			return nil, err
		}
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.clients[as.Issuer] = c
	return c, nil
}

// Receiver gets the authorization response for an authorization request:
// it decides the redirect URI, has build make the authorization URL with
// it, brings that URL to the person, and returns the redirect URI used and
// the response's query parameters. RedirectURI is the one to register.
type Receiver interface {
	RedirectURI() string
	Receive(ctx context.Context, build func(redirectURI string) string) (redirectURI string, params url.Values, err error)
}
