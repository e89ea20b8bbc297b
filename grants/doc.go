// Package grants gets tokens without a person at a browser: the
// [stepup.Escalator]s of the grants the MCP authorization extensions
// define besides the authorization code, for services, CI jobs and
// agents.
//
//	Escalator            grant                                   credential
//	[ClientCredentials]  client_credentials (RFC 6749 §4.4)      a [ClientSecret] (client_secret_basic
//	                                                               or _post) or a [PrivateKeyJWT] (RFC 7523 §2.2)
//	[Workload]           JWT bearer (RFC 7523 §2.1)              the workload's own token: [TokenFile], [TokenEnv]
//	[Enterprise]         token exchange at the IdP (RFC 8693),   the user's ID token from the enterprise IdP
//	                       then JWT bearer with the ID-JAG
//
// Each is used like the authorization code Escalator, in a
// [stepup.Transport], so that the source's single-flight, guard, stores
// and typed errors apply unchanged: any number of concurrent 403s for the
// same scope make one token request. Each finds the token endpoint through
// package discovery (RFC 9728, then RFC 8414), sends the RFC 8707 resource
// and the scopes stepup computed (requested ∪ granted ∪ challenged, else
// the resource's scopes_supported), and returns a token without a refresh
// token: on expiry the 401 runs the grant again.
//
// A token endpoint's refusal comes back as a [*TokenError] with its error
// code, never with the response body; invalid_scope,
// unauthorized_client and unsupported_grant_type wrap [stepup.ErrDeclined],
// which the guard remembers as it does a person's refusal. No error, and no String of a
// [ClientSecret] or [PrivateKeyJWT], holds a secret, an assertion or a
// private key. Token requests are not retried: an assertion may be used
// once (RFC 7523 §3).
//
// Servers differ where the specifications let them: Ory Hydra binds
// tokens to an audience parameter rather than to the RFC 8707 resource
// (set [ClientCredentials.EndpointParams]), wants its token endpoint as
// the client assertion's aud ([PrivateKeyJWT.AudienceTokenEndpoint]), and
// serves the JWT bearer grant without listing it, which is why a server
// that lists no matching grant is still tried when no other does.
package grants
