// Package discovery finds out how to get a token for a protected resource:
// its protected resource metadata (RFC 9728) and the metadata of its
// authorization servers (RFC 8414, OpenID Connect Discovery 1.0).
//
// A [Client] fetches the documents in the order the MCP authorization
// specification gives, checks that each names what it was fetched for
// (RFC 9728 §3.3, RFC 8414 §3.3) and caches them per URL. Every request it
// sends, and every request of the [*http.Client]s it hands out for the
// token and registration endpoints, is held to one policy: https except on
// loopback, and no private, loopback or link-local addresses unless
// allowed, checked on the URL and again on the address a name resolves to
// when the connection is dialled, so that a document cannot point a client
// at the services of its own network (RFC 9728 §7.7, RFC 8414 §6.2).
// Metadata requests go through go-retryablehttp: network errors and 5xx
// answers are retried with backoff, 4xx answers never.
//
// The parsers, [ParseProtectedResource] and [ParseAuthServer], take
// documents from anyone: they check types and URLs and refuse what a
// client must not act on, and they never panic.
package discovery
