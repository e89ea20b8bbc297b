// Package authcode is a ready [stepup.Escalator]: the OAuth 2.0
// authorization code grant (RFC 6749 §4.1) with PKCE (RFC 7636), found and
// registered on its own, so that a client of an MCP server, or of any API
// that names its authorization server in protected resource metadata
// (RFC 9728), needs nothing else to get and step up its tokens.
//
// For each escalation an [Escalator] discovers the resource's metadata and
// its authorization server's (package discovery), identifies itself there
// (a pre-registered client, a client ID metadata document, or RFC 7591
// dynamic registration, kept per issuer), and sends the person to the
// authorization endpoint with the scopes the Transport asks for, the
// RFC 8707 resource, a fresh PKCE S256 challenge and state, and the
// RFC 9470 acr_values and max_age or the OpenID Connect claims of the
// challenge. A [Receiver] carries the authorization URL to the person and
// brings the response back: [Loopback] for programs a person runs
// (RFC 8252), [Headless] for tests and automation. The response is checked
// (state; iss, RFC 9207) before the code is redeemed, and the [stepup.Grant]
// tells the source how to refresh with the client that was used.
//
//	esc := &authcode.Escalator{Receiver: &authcode.Loopback{Open: authcode.OpenBrowser}}
//	ts, err := stepup.NewTokenSource(resource, nil, stepup.WithEscalator(esc))
//	client := &http.Client{Transport: &stepup.Transport{Source: ts}}
//
// # OpenID Providers and plain OAuth servers
//
// Many authorization servers are OpenID Providers too (oidc-provider,
// Keycloak, Entra ID, Google), and there some of what an MCP client asks
// for is OpenID Connect: offline_access, which brings a refresh token
// (OpenID Connect Core 1.0 §11), and acr_values, max_age and claims, the
// parameters of an RFC 9470 step-up. A provider acts on them only in an
// OpenID Connect request, one whose scope holds openid (§3.1.2.1), and
// keeps offline_access only with prompt=consent (§11): without them a
// provider such as oidc-provider drops offline_access, so that every expiry
// is a new login, and refuses acr_values outright. A plain OAuth server, on
// the other hand, may not know openid at all and refuse it as a scope,
// while RFC 9470 §4 gives acr_values and max_age to OAuth requests as they
// are. So the Escalator decides per server: a server whose metadata was
// found by OpenID Connect Discovery, or lists openid in scopes_supported,
// is an OpenID Provider, and gets openid with any of those four, and
// prompt=consent with offline_access; any other gets the request as RFC
// 6749 and RFC 9470 write it. The consent asked for is that of a new
// authorization, which a step-up is anyway; a step-up is never a refresh,
// whatever refresh token is held (RFC 6749 §6: a refresh cannot widen the
// grant).
//
// # Registration and the loopback redirect URI
//
// A dynamic registration (RFC 7591) says application_type native for a
// loopback redirect URI (OpenID Connect Dynamic Client Registration 1.0
// §2): servers hold a web client, the default, to the exact redirect URI
// registered, port included, while RFC 8252 §7.3 lets a native client's
// loopback port vary, as [Loopback]'s does from one login to the next. A
// kept registration that is not known to be native is used on its own
// port only; on another, the client registers again.
// Registrations are kept per issuer; when the resource's metadata, fetched
// anew for each escalation and before each refresh, names another
// authorization server, the client registers there.
//
// # Failing before the browser opens
//
// An authorization server must not redirect to a redirect URI it does not
// accept (RFC 6749 §4.1.2.1): the person is left on its error page and the
// caller waits for its deadline. When the server has a pushed
// authorization request endpoint (RFC 9126), the Escalator sends the
// request there first, and what the server refuses, a redirect URI, a
// scope, a parameter, comes back as an [*AuthorizationError] before any
// browser opens; the browser then carries only client_id and request_uri.
//
// x/oauth2 builds the authorization URL and redeems the code; this package
// adds what it lacks. It depends on nothing beyond x/oauth2,
// go-retryablehttp and the standard library.
package authcode
