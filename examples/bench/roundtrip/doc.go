// Package roundtrip measures what stepup's Transport costs on the request
// path and how it behaves when many requests draw the same challenge at
// once. It holds only tests and benchmarks; nothing here is imported.
//
// BenchmarkRoundTripNoChallenge/wrapper={base,oauth2,floor,stepup} times one
// round trip through an in-memory RoundTripper that answers 200 with a small
// body: bare (base), wrapped in golang.org/x/oauth2's Transport with a static
// token (oauth2), wrapped in the least a token-attaching wrapper does, copy
// the request and its header and set Authorization (floor), and wrapped in a
// stepup.Transport attaching the same token (stepup). The base builds the
// same fresh response for all of them, so the differences between the rows
// are the wrappers alone. scripts/bench.sh checks that stepup takes at most
// 0.7× oauth2's time, with fewer allocations, and no more than the floor's.
//
// BenchmarkStorm/status={403,401} releases 1,000 goroutines at once, each sending
// one request through one stepup.Transport to a loopback httptest server:
//
//   - 403: the server answers Bearer error="insufficient_scope" until the
//     request carries a token the Escalator issued;
//   - 401: the server answers Bearer error="invalid_token" until the request
//     carries a token from a refresh, which goes to a real token endpoint
//     (stepup.WithOAuth2Config).
//
// The remedy (the Escalator's answer, the token endpoint's) is held until
// all 1,000 first sends have been answered, as a real one, a round trip to
// the authorization server or a user's consent, would let the whole storm
// pile up: every request then draws the challenge with the old token, the
// worst case for sharing one remedy, reached without sleeping. Each
// iteration is one storm against a fresh TokenSource and Transport, so the
// counts are per storm. They are reported as custom metrics:
// escalations/op (Escalator calls), refreshes/op (token endpoint hits),
// requests/op (requests the resource server answered: 1,000 plus the
// replays) and ms-to-all-done/op (from the release of the goroutines to
// the last response read). ns/op also counts starting the goroutines.
// TestStorm runs one storm of each kind and asserts the counts: exactly one
// escalation and no refresh for the 403, exactly one refresh and no
// escalation for the 401, and every request answered 200.
//
// Run from the repository root:
//
//	scripts/bench.sh                      # all tables, and the checks
//	go test -run '^$' -bench 'RoundTripNoChallenge|Storm' -benchmem -count 5 ./examples/bench/roundtrip
//	go test -race -run Storm ./examples/bench/roundtrip
package roundtrip
