package authcode

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/oauth2"

	"github.com/stepup-go/stepup"
	"github.com/stepup-go/stepup/discovery"
	"github.com/stepup-go/stepup/dpop"
	"github.com/stepup-go/stepup/internal/netguard"
)

// DefaultClientName is the client_name of a dynamic registration when
// [Escalator.ClientName] is empty.
const DefaultClientName = "stepup"

// Escalator is a [stepup.Escalator] that obtains authorizations with the
// authorization code grant and PKCE. The zero value works: it discovers,
// registers dynamically and prints the authorization URL for the person
// to open, listening on loopback for the answer.
//
// For each escalation it:
//
//  1. fetches the resource's protected resource metadata (RFC 9728)
//     anew, from the challenge's validated resource_metadata, else the
//     well-known URLs,
//     and the metadata of the first authorization server listed that
//     supports PKCE S256 and the authorization code flow (for a resource
//     with no metadata at all, the MCP 2025-03-26 fallback, if
//     [Escalator.AllowLegacyDiscovery]);
//  2. identifies itself there: [Escalator.Client], else a registration
//     kept for that issuer, else the client ID metadata document at
//     [Escalator.ClientMetadataURL] if the server accepts one, else a
//     dynamic registration (RFC 7591), kept for the issuer;
//  3. has the [Receiver] send the person to the authorization endpoint
//     with the scopes to request, the RFC 8707 resource of the metadata,
//     a fresh PKCE S256 challenge and state, the acr_values, max_age
//     (RFC 9470) and claims of the challenge, with openid and
//     prompt=consent where an OpenID Provider needs them (see the package
//     documentation), and [Escalator.AuthorizationParams]; pushed first
//     to the server's pushed authorization request endpoint (RFC 9126)
//     when it has one;
//  4. checks the response's state and its iss (RFC 9207) before anything
//     else, then redeems the code with the verifier and the resource.
//
// The scopes requested are [stepup.EscalationRequest.Scopes]; when it is
// empty, the resource's scopes_supported, as the MCP authorization
// specification says, else none; and offline_access when the
// authorization server lists it, unless NoOfflineAccess. openid and
// offline_access, the authorization server's own scopes, go only to a
// server whose scopes_supported lists them or is absent. The [stepup.Grant]
// says which scopes were requested and refreshes through the client used,
// with the same resource, so that the source needs no refresh set up.
//
// An error response access_denied or unmet_authentication_requirements
// (RFC 9470 §5) is an [*AuthorizationError] wrapping [stepup.ErrDeclined].
//
// An Escalator is safe for concurrent use and may serve many sources; set
// its fields before first use and do not change them afterwards.
type Escalator struct {
	// Receiver carries the authorization URL to the person and the
	// response back. Nil means a [Loopback] that prints the URL on
	// standard error.
	Receiver Receiver

	// Client is a client registered beforehand, used with the
	// authorization server of its Issuer, or with any when Issuer is "".
	// Servers without a registration endpoint need one: Google, Microsoft
	// Entra ID, Keycloak unless it lets clients register without an
	// initial access token. Register it with the redirect URI the Receiver
	// uses: for a [Loopback], http://127.0.0.1/callback as a native or
	// desktop client, or, where the server compares the port too, a
	// fixed Loopback.Port. With no Client for the server, no client ID
	// metadata document it accepts and no registration endpoint, an
	// escalation fails with [ErrNoClient] before any request is sent.
	Client *Registration

	// ClientMetadataURL is the https URL of this client's client ID
	// metadata document, used as client_id with authorization servers
	// whose metadata says client_id_metadata_document_supported. The
	// document must list the redirect URIs the Receiver uses.
	ClientMetadataURL string

	// ClientName is the client_name of dynamic registrations; ""
	// means DefaultClientName.
	ClientName string

	// Registrations keeps dynamic registrations per issuer. Nil means
	// memory, for the Escalator's life.
	Registrations RegistrationStore

	// Discovery fetches metadata and sends the requests to authorization
	// servers under its policy. Nil means a [discovery.Client] with its
	// defaults.
	Discovery *discovery.Client

	// AuthorizationServer, when set, is the issuer to use among those the
	// resource lists; others are not used.
	AuthorizationServer string

	// NoOfflineAccess keeps the Escalator from adding offline_access to
	// the scopes requested when the authorization server lists it in
	// scopes_supported: with offline_access, OpenID Connect providers
	// issue refresh tokens (OpenID Connect Core 1.0 §11).
	NoOfflineAccess bool

	// AllowLegacyDiscovery lets the Escalator authorize for a resource
	// that publishes no protected resource metadata (RFC 9728) at all, as
	// servers written for the MCP 2025-03-26 authorization specification
	// do: it then takes the resource's origin as the authorization server,
	// with its RFC 8414 metadata at the origin's well-known URL, issuer
	// unchecked but held with every endpoint to that origin, else the
	// default endpoints /authorize, /token and /register there, PKCE S256
	// assumed (see [discovery.Client.LegacyAuthServer]).
	//
	// It applies only when the challenge named no resource_metadata and
	// every well-known location answered that there is no document (a
	// 4xx, or not JSON). A document that exists and is refused, one that
	// names another resource, say, still ends the escalation with no
	// authorization request; so do a malformed document and a server
	// error. Off by default: the current MCP specification requires
	// protected resource metadata, and without it nothing but the
	// resource's own origin vouches for the authorization server.
	AllowLegacyDiscovery bool

	// OmitResource leaves the RFC 8707 resource parameter out of the
	// authorization, token and refresh requests, for authorization
	// servers that refuse it: Microsoft Entra ID's v2.0 endpoints answer
	// AADSTS9010010 when a resource comes with scopes, and bind the token
	// to the resource through the scopes instead (api://APP/scope). Without
	// resource, nothing but the server's own configuration keeps the token
	// from being accepted by another resource; leave it off for servers
	// that implement RFC 8707.
	OmitResource bool

	// AuthorizationParams are sent with every authorization request, as
	// some servers need: audience at Auth0, which issues a JWT for an API
	// only when asked; access_type=offline at Google, which issues
	// refresh tokens for it rather than for offline_access; login_hint or
	// domain_hint at Google and Entra ID; kc_idp_hint at Keycloak. Each
	// takes one value, and none may be a parameter the Escalator sets
	// (response_type, client_id, redirect_uri, scope, state, the PKCE
	// ones, resource, acr_values, max_age, claims, request_uri): that is an
	// error before any request. prompt is the exception: its values are
	// sent with the consent the Escalator may add, unless one is none,
	// which stands alone.
	AuthorizationParams url.Values

	init  sync.Once
	disc  *discovery.Client
	regs  RegistrationStore
	regMu sync.Mutex // one registration at a time, so that a server gets one client per issuer
}

func (e *Escalator) setup() {
	e.init.Do(func() {
		e.disc = e.Discovery
		if e.disc == nil {
			e.disc = &discovery.Client{}
		}
		e.regs = e.Registrations
		if e.regs == nil {
			e.regs = &MemoryRegistrations{}
		}
	})
}

func (e *Escalator) receiver() Receiver {
	if e.Receiver != nil {
		return e.Receiver
	}
	return &Loopback{}
}

// Escalate obtains a new authorization for req; see [Escalator].
func (e *Escalator) Escalate(ctx context.Context, req *stepup.EscalationRequest) (*stepup.Grant, error) {
	e.setup()
	resource := req.Resource
	if resource == "" && req.Request != nil && req.Request.URL != nil {
		u := *req.Request.URL
		u.RawQuery, u.Fragment = "", ""
		resource = u.String()
	}
	if resource == "" {
		return nil, errors.New("authcode: the escalation request names no resource")
	}
	prm, as, err := e.discover(ctx, resource, req)
	if err != nil {
		return nil, err
	}
	scopes := e.scopes(req, prm, as)
	f := &flow{e: e, req: req, resource: resource, prm: prm, as: as, scopes: scopes}
	params, err := e.receiver().Receive(ctx, f.authorize)
	if err != nil {
		return nil, err
	}
	if f.cfg == nil {
		return nil, errors.New("authcode: the Receiver returned without an authorization request")
	}
	return f.redeem(ctx, params)
}

// discover returns the resource's metadata and its authorization
// server's, or with AllowLegacyDiscovery and no resource metadata, the
// 2025-03-26 fallback's.
func (e *Escalator) discover(ctx context.Context, resource string, req *stepup.EscalationRequest) (*discovery.ProtectedResource, *discovery.AuthServer, error) {
	// Fetched anew for each escalation: the metadata names the
	// authorization servers, and a resource that moved to another must not
	// be followed to the old one from a cached copy (MCP: a client
	// registers again when authorization_servers changes).
	prm, err := e.disc.FreshProtectedResource(ctx, resource, req.ResourceMetadata)
	if err != nil {
		if e.AllowLegacyDiscovery && errors.Is(err, discovery.ErrNotFound) &&
			req.ResourceMetadata == "" && req.Challenge.ResourceMetadata == "" {
			return e.legacy(ctx, resource)
		}
		return nil, nil, fmt.Errorf("authcode: protected resource metadata: %w", err)
	}
	as, err := e.authServer(ctx, resource, prm, req.Issuer)
	if err != nil {
		return nil, nil, err
	}
	return prm, as, nil
}

// maxAuthServers bounds the authorization servers of a resource that are
// tried: a document listing thousands must not make thousands of requests.
const maxAuthServers = 4

// authServer returns the metadata of the first authorization server prm
// lists that fits: metadata found, the authorization code flow with PKCE
// S256. The preferred issuer, the one of the grant held, is tried first
// when listed, so that a step-up stays where the grant is. Only the first
// maxAuthServers are tried.
func (e *Escalator) authServer(ctx context.Context, resource string, prm *discovery.ProtectedResource, preferred string) (*discovery.AuthServer, error) {
	if len(prm.AuthorizationServers) == 0 {
		return nil, fmt.Errorf("authcode: the metadata of %s names no authorization server", prm.Resource)
	}
	issuers := prm.AuthorizationServers
	if i := slices.Index(issuers, preferred); i > 0 {
		issuers = slices.Concat([]string{preferred}, issuers[:i], issuers[i+1:])
	}
	var errs []error
	tried := 0
	for _, issuer := range issuers {
		if e.AuthorizationServer != "" && issuer != e.AuthorizationServer {
			continue
		}
		if tried++; tried > maxAuthServers {
			break
		}
		as, err := e.disc.AuthServer(ctx, resource, issuer)
		if err == nil {
			err = fits(as)
		}
		if err == nil {
			return as, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		errs = append(errs, fmt.Errorf("%s: %w", issuer, err))
	}
	if len(errs) == 0 {
		return nil, fmt.Errorf("authcode: %s does not list authorization server %s", prm.Resource, e.AuthorizationServer)
	}
	return nil, fmt.Errorf("authcode: no usable authorization server: %w", errors.Join(errs...))
}

// authorizationParams are the parameters the Escalator sets in an
// authorization request; an authorization endpoint URL must not carry
// them already (RFC 6749 §3.1: parameters must not be repeated).
var authorizationParams = []string{
	"response_type", "client_id", "redirect_uri", "scope", "state", "code_challenge", "code_challenge_method",
	"resource", "acr_values", "max_age", "claims", "prompt", "request_uri", "dpop_jkt",
}

// fits checks that as can serve an authorization code flow with PKCE.
func fits(as *discovery.AuthServer) error {
	if !slices.Contains(as.CodeChallengeMethodsSupported, "S256") {
		return ErrNoPKCE
	}
	if len(as.ResponseTypesSupported) > 0 && !slices.Contains(as.ResponseTypesSupported, "code") {
		return errors.New("authcode: authorization server does not support response_type code")
	}
	if as.AuthorizationEndpoint == "" || as.TokenEndpoint == "" {
		return errors.New("authcode: authorization server metadata lacks an authorization or token endpoint")
	}
	u, err := url.Parse(as.AuthorizationEndpoint)
	if err != nil {
		return fmt.Errorf("authcode: authorization endpoint: %w", err)
	}
	if u.Scheme != "https" && !netguard.IsLoopbackHost(u.Hostname()) {
		return errors.New("authcode: authorization endpoint is not https (RFC 6749 §3.1)")
	}
	if par := as.PushedAuthorizationRequestEndpoint; par != "" {
		// The request, with any client secret, is sent there.
		pu, err := url.Parse(par)
		if err != nil || pu.Scheme != "https" && !netguard.IsLoopbackHost(pu.Hostname()) {
			return errors.New("authcode: pushed authorization request endpoint is not https (RFC 9126 §2)")
		}
	}
	q := u.Query()
	for _, p := range authorizationParams {
		if q.Has(p) {
			return fmt.Errorf("authcode: authorization endpoint URL already carries %s", p)
		}
	}
	return nil
}

// scopes returns the scopes to request (see [Escalator]).
func (e *Escalator) scopes(req *stepup.EscalationRequest, prm *discovery.ProtectedResource, as *discovery.AuthServer) stepup.Scopes {
	scopes := req.Scopes
	if len(scopes) == 0 {
		scopes = stepup.Scopes(nil).Union(prm.ScopesSupported)
	}
	if !e.NoOfflineAccess && slices.Contains(as.ScopesSupported, "offline_access") && !scopes.Contains("offline_access") {
		scopes = scopes.Union(stepup.Scopes{"offline_access"})
	}
	// openid and offline_access are the authorization server's, not the
	// resource's: carried over from a grant of another server (the
	// resource moved), they go only to a server that lists them, or lists
	// nothing.
	if len(as.ScopesSupported) > 0 {
		scopes = slices.DeleteFunc(slices.Clone(scopes), func(s string) bool {
			return (s == "openid" || s == "offline_access") && !slices.Contains(as.ScopesSupported, s)
		})
	}
	return scopes
}

// flow is one authorization: what the request was built from, and what
// redeeming its response needs.
type flow struct {
	e        *Escalator
	req      *stepup.EscalationRequest
	resource string
	prm      *discovery.ProtectedResource
	as       *discovery.AuthServer
	scopes   stepup.Scopes

	// Set by authorize.
	cfg      *oauth2.Config
	verifier string
	state    string
}

// authorize is the flow's [AuthorizeFunc]: it identifies the client for
// redirectURI and builds the authorization request, with a fresh PKCE
// verifier and state (RFC 7636 §4.1, RFC 6749 §10.12).
func (f *flow) authorize(ctx context.Context, redirectURI string) (*AuthorizationRequest, error) {
	if f.cfg != nil {
		return nil, errors.New("authcode: the Receiver asked for a second authorization request")
	}
	reg, err := f.e.registration(ctx, f.as, f.resource, redirectURI)
	if err != nil {
		return nil, err
	}
	f.cfg = &oauth2.Config{
		ClientID:     reg.ClientID,
		ClientSecret: reg.ClientSecret,
		Endpoint: oauth2.Endpoint{
			AuthURL:   f.as.AuthorizationEndpoint,
			TokenURL:  f.as.TokenEndpoint,
			AuthStyle: authStyle(reg.AuthMethod),
		},
		RedirectURL: redirectURI,
		Scopes:      f.scopes,
	}
	if reg.AuthMethod == AuthMethodNone {
		f.cfg.ClientSecret = ""
	}
	f.verifier = oauth2.GenerateVerifier()
	if f.state, err = randomState(); err != nil {
		return nil, err
	}
	params, err := f.params()
	if err != nil {
		return nil, err
	}
	hc := f.e.disc.HTTPClient(f.resource)
	authURL := f.cfg.AuthCodeURL(f.state, params...)
	if f.as.PushedAuthorizationRequestEndpoint != "" {
		// RFC 9126: the request goes to the server first, so that what it
		// refuses (a redirect URI, a scope, a parameter) comes back here as
		// an error, before any browser opens; refused at the
		// authorization endpoint, it would leave the person on an error
		// page and the caller waiting (RFC 6749 §4.1.2.1).
		phc := hc
		if f.req.DPoP != nil {
			phc = f.req.DPoP.Client(hc) // RFC 9449 §10.1
		}
		if authURL, err = f.push(ctx, phc, authURL); err != nil {
			return nil, err
		}
	} else if f.as.RequirePushedAuthorizationRequests {
		return nil, errors.New("authcode: the authorization server requires pushed authorization requests but names no endpoint for them")
	}
	return &AuthorizationRequest{URL: authURL, State: f.state, Client: hc}, nil
}

// params returns the authorization request's parameters beyond those
// x/oauth2 sets, and sets f.scopes to the scopes requested.
//
// With an OpenID Provider, offline_access, acr_values, max_age and claims
// are OpenID Connect parameters: they come with the openid scope, which
// makes the request an OpenID Connect one (OpenID Connect Core 1.0
// §3.1.2.1; providers refuse acr_values without it), and offline_access
// comes with prompt=consent, without which a provider ignores it and
// issues no refresh token (OpenID Connect Core 1.0 §11). A plain OAuth
// server gets neither: openid would be an unknown scope there, and RFC
// 9470 §4 defines acr_values and max_age for OAuth requests as they are.
func (f *flow) params() ([]oauth2.AuthCodeOption, error) {
	opts := []oauth2.AuthCodeOption{oauth2.S256ChallengeOption(f.verifier)}
	if d := f.req.DPoP; d != nil {
		// RFC 9449 §10: the code is bound to the key, so that a code
		// intercepted on its way back cannot be redeemed without it.
		if err := d.Key.Accepted(f.as.DPoPSigningAlgValuesSupported); err != nil {
			return nil, fmt.Errorf("authcode: %w", err)
		}
		opts = append(opts, oauth2.SetAuthURLParam("dpop_jkt", d.Key.Thumbprint()))
	}
	if !f.e.OmitResource {
		opts = append(opts, oauth2.SetAuthURLParam("resource", f.prm.Resource))
	}
	oidc := false
	if len(f.req.ACRValues) > 0 {
		opts = append(opts, oauth2.SetAuthURLParam("acr_values", strings.Join(f.req.ACRValues, " ")))
		oidc = true
	}
	if f.req.MaxAge >= 0 && f.req.MaxAge != stepup.NoMaxAge {
		opts = append(opts, oauth2.SetAuthURLParam("max_age", strconv.Itoa(f.req.MaxAge)))
		oidc = true
	}
	if len(f.req.Claims) > 0 {
		opts = append(opts, oauth2.SetAuthURLParam("claims", string(f.req.Claims)))
		oidc = true
	}
	var prompt []string
	if p := f.e.AuthorizationParams["prompt"]; len(p) > 0 {
		prompt = strings.Fields(strings.Join(p, " "))
	}
	if openIDProvider(f.as) {
		offline := f.scopes.Contains("offline_access")
		if (oidc || offline) && !f.scopes.Contains("openid") {
			f.scopes = f.scopes.Union(stepup.Scopes{"openid"})
			f.cfg.Scopes = f.scopes
		}
		// prompt=none stands alone (OpenID Connect Core 1.0 §3.1.2.1).
		if offline && !slices.Contains(prompt, "consent") && !slices.Contains(prompt, "none") {
			prompt = append(prompt, "consent")
		}
	}
	if len(prompt) > 0 {
		opts = append(opts, oauth2.SetAuthURLParam("prompt", strings.Join(prompt, " ")))
	}
	for name, values := range f.e.AuthorizationParams {
		if name == "prompt" {
			continue
		}
		if slices.Contains(authorizationParams, name) || len(values) != 1 {
			return nil, fmt.Errorf("authcode: Escalator.AuthorizationParams sets %s, which must have one value and must not be one the Escalator sets", name)
		}
		opts = append(opts, oauth2.SetAuthURLParam(name, values[0]))
	}
	return opts, nil
}

// openIDProvider reports whether as is an OpenID Provider: its metadata
// was found by OpenID Connect Discovery, or lists the openid scope.
func openIDProvider(as *discovery.AuthServer) bool {
	return as.OpenIDConfiguration || slices.Contains(as.ScopesSupported, "openid")
}

// redeem checks the authorization response params and redeems its code.
func (f *flow) redeem(ctx context.Context, params url.Values) (*stepup.Grant, error) {
	// RFC 9207 §2.4: the issuer is checked first; on a mismatch, not even
	// the error is acted on.
	if iss, ok := params["iss"]; ok {
		if len(iss) != 1 || iss[0] != f.as.Issuer {
			return nil, ErrIssuerMismatch
		}
	} else if f.as.AuthorizationResponseIssParameterSupported {
		return nil, fmt.Errorf("%w: the response has no iss, though the server's metadata says it sends one", ErrIssuerMismatch)
	}
	if st := params["state"]; len(st) != 1 || st[0] != f.state {
		return nil, ErrStateMismatch
	}
	if code := params.Get("error"); code != "" {
		return nil, &AuthorizationError{Code: code, Description: params.Get("error_description"), URI: params.Get("error_uri")}
	}
	code := params.Get("code")
	if code == "" || len(params["code"]) != 1 {
		return nil, errors.New("authcode: the authorization response carries no code")
	}
	xhc := f.e.disc.RetryingHTTPClient(f.resource)
	if f.req.DPoP != nil {
		// RFC 9449 §5: the token is bound to the key; a fresh proof for
		// each try.
		xhc = f.e.disc.Retrying(f.req.DPoP.Client(f.e.disc.HTTPClient(f.resource)))
	}
	xctx := context.WithValue(ctx, oauth2.HTTPClient, xhc)
	opts := []oauth2.AuthCodeOption{oauth2.VerifierOption(f.verifier)}
	if !f.e.OmitResource {
		opts = append(opts, oauth2.SetAuthURLParam("resource", f.prm.Resource))
	}
	tok, err := f.cfg.Exchange(xctx, code, opts...)
	if err != nil {
		return nil, fmt.Errorf("authcode: redeeming the code: %w", err)
	}
	if tok.AccessToken == "" {
		return nil, errors.New("authcode: the token response has no access_token")
	}
	if tok.Type() != "Bearer" && !(f.req.DPoP != nil && strings.EqualFold(tok.TokenType, dpop.Scheme)) {
		// RFC 6749 §7.1: a client must not use a token whose type it
		// does not understand; DPoP only when it sent proofs.
		return nil, fmt.Errorf("authcode: the token response's token_type is %q, not Bearer", clip(tok.TokenType))
	}
	g := &stepup.Grant{Token: tok, Refresh: f.refreshFunc(), Issuer: f.as.Issuer}
	if len(f.scopes) > 0 {
		g.Scopes = f.scopes
	}
	return g, nil
}

// refreshFunc refreshes through the client this flow used, with the
// resource it authorized for, through the Escalator's policy.
//
// Before each refresh, the resource's metadata is fetched anew: when it no
// longer names the issuer that granted the token, the resource moved to
// another authorization server, whose tokens alone it accepts now, and a
// refresh at the old one would bring a token refused again. The refresh
// then fails with [stepup.ErrInvalidGrant], so that the Transport asks
// for a new authorization, registered at the new server. Metadata that
// cannot be fetched does not stop the refresh.
func (f *flow) refreshFunc() stepup.RefreshFunc {
	refresh := stepup.RefreshWithConfig(f.cfg)
	hc := f.e.disc.HTTPClient(f.resource) // RefreshWithConfig retries by itself
	resource := f.prm.Resource
	if f.e.OmitResource {
		resource = ""
	}
	listed := len(f.prm.AuthorizationServers) > 0 // not the MCP 2025-03-26 fallback
	disc, target, metadataURL, issuer := f.e.disc, f.resource, f.req.ResourceMetadata, f.as.Issuer
	return func(ctx context.Context, tok *oauth2.Token, _ string) (*oauth2.Token, error) {
		if listed {
			prm, err := disc.FreshProtectedResource(ctx, target, metadataURL)
			if err == nil && !slices.Contains(prm.AuthorizationServers, issuer) {
				return nil, fmt.Errorf("authcode: %w: the metadata of %s no longer names authorization server %s", stepup.ErrInvalidGrant, prm.Resource, issuer)
			}
		}
		return refresh(context.WithValue(ctx, oauth2.HTTPClient, hc), tok, resource)
	}
}

// registration returns how to identify the client at as for redirectURI
// (see [Escalator]).
func (e *Escalator) registration(ctx context.Context, as *discovery.AuthServer, resource, redirectURI string) (*Registration, error) {
	if c := e.Client; c != nil && (c.Issuer == "" || c.Issuer == as.Issuer) {
		r := *c
		if r.AuthMethod == "" {
			r.AuthMethod = chooseAuthMethod(as, r.ClientSecret != "")
		}
		return &r, nil
	}
	e.regMu.Lock()
	defer e.regMu.Unlock()
	saved, err := e.regs.LoadRegistration(ctx, as.Issuer)
	if err != nil {
		return nil, fmt.Errorf("authcode: loading the registration for %s: %w", as.Issuer, err)
	}
	if saved != nil && saved.usable(redirectURI, time.Now()) {
		return saved, nil
	}
	if e.ClientMetadataURL != "" && as.ClientIDMetadataDocumentSupported {
		if err := checkClientMetadataURL(e.ClientMetadataURL); err != nil {
			return nil, err
		}
		return &Registration{Issuer: as.Issuer, ClientID: e.ClientMetadataURL, AuthMethod: AuthMethodNone}, nil
	}
	if as.RegistrationEndpoint == "" {
		return nil, fmt.Errorf("%w %s: set Escalator.Client, or a ClientMetadataURL if the server accepted one", ErrNoClient, as.Issuer)
	}
	name := e.ClientName
	if name == "" {
		name = DefaultClientName
	}
	r, err := register(ctx, e.disc.HTTPClient(resource), as, redirectURI, name)
	if err != nil {
		return nil, err
	}
	if err := e.regs.SaveRegistration(ctx, r); err != nil {
		return nil, fmt.Errorf("authcode: saving the registration for %s: %w", as.Issuer, err)
	}
	return r, nil
}

// checkClientMetadataURL checks that u can be a client ID metadata
// document's client_id: an https URL with a path, without fragment.
func checkClientMetadataURL(u string) error {
	p, err := url.Parse(u)
	if err != nil || p.Scheme != "https" || p.Host == "" || p.Path == "" || p.Path == "/" || p.Fragment != "" || p.User != nil {
		return fmt.Errorf("authcode: ClientMetadataURL %q is not an https URL with a path", u)
	}
	return nil
}

func authStyle(method string) oauth2.AuthStyle {
	if method == AuthMethodBasic {
		return oauth2.AuthStyleInHeader
	}
	return oauth2.AuthStyleInParams // client_secret_post, and none, which sends client_id alone
}

// randomState returns a state value with 256 bits from crypto/rand.
func randomState() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("authcode: state: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}
