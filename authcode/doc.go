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
//	client := &http.Client{Transport: &stepup.Transport{Source: ts, Escalator: esc}}
//
// x/oauth2 builds the authorization URL and redeems the code; this package
// adds what it lacks. It depends on nothing beyond x/oauth2,
// go-retryablehttp and the standard library.
package authcode
