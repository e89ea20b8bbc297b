// Package stepup makes HTTP clients survive OAuth authorization challenges.
//
// A protected resource (an MCP server above all) answers a request whose
// token lacks a scope with 403 and
//
//	WWW-Authenticate: Bearer error="insufficient_scope", scope="files:write", resource_metadata="…"
//
// A client that refreshes and retries gets the same 403 again: a refresh
// can never widen scope (RFC 6749 §6). Only a new authorization, to which
// the user consents, can. stepup tells the challenges apart and answers
// each the way its RFC says.
//
// # The pieces
//
// A [Transport] is an [http.RoundTripper] to wrap any [http.Client] with. It
// attaches the token of its [TokenSource] to requests for the resource's
// origin, reads the challenges of 401 and 403 responses ([ParseChallenges]),
// decides what each calls for, and replays the request once it is remedied.
// The [TokenSource] is the one authority for the resource's grant. It holds
// the token, the scopes requested and granted, how to refresh, and the
// escalation policy: the [Escalator] you supply ([WithEscalator]), which
// obtains new authorizations (typically an authorization code flow with
// PKCE that asks the user to consent, package authcode, or, for a service
// with no person, a client credentials, JWT bearer or enterprise-managed
// grant, package grants), and the guard's bounds. It runs the remedies, so
// that any number of Transports (and [golang.org/x/oauth2.Transport]s)
// sharing it share one set of remedies and one policy, whichever asks
// first:
//
//	ts, _ := stepup.NewTokenSource(resource, nil, stepup.WithEscalator(esc))
//	client := &http.Client{Transport: &stepup.Transport{Source: ts}}
//
// # A request's path
//
//	RoundTrip
//	  → send: a copy of the request, with the token, if it is for the resource's origin
//	  → classify: not a 401 or 403 with a challenge to act on → the response, untouched
//	  → remedy, on the TokenSource, under the guard: refresh, escalation or DPoP nonce
//	  → replay with the new token (the body again through GetBody), and classify again
//
// # What each challenge gets
//
// Dispatch is on the challenge's error code (RFC 6750 §3.1); the status only
// tells a challenge without one apart.
//
//	response                                      remedy
//	401, no token sent                            Escalator: authorization required
//	401 invalid_token, or 401 without error       a newer token if the source has one, else a
//	  after a token was sent                        refresh (single-flight); no refresh token, or
//	                                                invalid_grant: Escalator, re-authorization;
//	                                                any other refresh failure: ChallengeError
//	                                                (ErrRefreshFailed), no prompt
//	403 insufficient_scope, and 403 Bearer        never a refresh: Escalator for the scopes
//	  with scope but no error (go-sdk servers)      requested ∪ granted ∪ challenged
//	401 insufficient_user_authentication          never a refresh: Escalator with acr_values
//	  (RFC 9470)                                    and max_age
//	401 insufficient_claims with claims           Escalator with the decoded claims
//	401 DPoP use_dpop_nonce (RFC 9449 §9)         the nonce kept for the resource (WithDPoP), or
//	                                                the DPoPNonce hook, then one replay
//	malformed or ambiguous challenge, one from    the response, untouched
//	  another origin, another error code, 400,
//	  no Escalator for an escalation
//	a remedy that failed, or that the guard       ChallengeError: ErrDeclined, ErrExhausted,
//	  stops                                         ErrReplayLimit, ErrRefreshFailed, ErrInvalidGrant
//	a remedied request whose body cannot be       ChallengeError: ErrBodyNotReplayable; the new
//	  sent again                                    token is in place, send the request again
//
// # The guard
//
// Nothing loops. Each challenge is remedied at most once per request, and
// the same challenge coming back after its remedy ends the request with
// [ErrExhausted] (RFC 9110 §15.5.2). A request is replayed at most
// [Transport.MaxReplays] times. Across requests, a challenge that came
// straight back after its escalation, and one the user declined, are not
// escalated again for the source's [WithExhaustedTTL] (10 minutes unless
// set) unless the granted scopes change: requests drawing it fail at once
// with the same typed error ([ErrExhausted], [ErrDeclined]).
//
// # Concurrency and timeouts
//
// Requests rejected with the same token share one refresh, which runs on
// for up to a minute when every caller has stopped waiting, so that a
// rotated refresh token is never lost. One escalation runs at a time for a
// resource: requests that draw the same challenge share it; a request that
// draws another waits for it, then asks only if the new grant does not
// cure its challenge, for the union of that grant and its challenge. An
// escalation does not end with the request that started it either: see
// [WithEscalationTimeout]. No lock is held while a request is in flight.
//
// # Sender-constrained tokens
//
// With [WithDPoP], the source's tokens are bound to a key (RFC 9449, package
// [github.com/stepup-go/stepup/dpop]): token requests carry a proof, and a
// token issued as DPoP goes to the resource as "Authorization: DPoP" with a
// fresh proof on every send and replay, with the nonce each server last
// gave. A token that leaks is useless without the key. The key is saved
// with the grant by the stores.
//
// # Errors
//
// A challenge stepup acted on and could not cure comes back as a
// [*ChallengeError], never as the raw 401 or 403: the MCP go-sdk client ends
// its session on a non-2xx answer to a POST but fails just the call on a
// transport error, and a typed error lets a caller tell a refusal
// ([ErrDeclined]) from a failure. Use [CheckRetry] with
// go-retryablehttp, so that a declined escalation is not retried into a
// second prompt.
package stepup
