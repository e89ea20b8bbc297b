// Package parse compares stepup's WWW-Authenticate parser with the parsers
// other Go projects ship, for speed and for correctness, on the same inputs in
// the same run. It holds only tests and benchmarks; nothing here is imported.
//
// The peers, each called through its public API only:
//
//   - distribution: github.com/docker/distribution
//     registry/client/auth/challenge.ResponseChallenges, the parser that
//     go-containerregistry also uses;
//   - containerd: github.com/containerd/containerd/v2
//     core/remotes/docker/auth.ParseAuthHeader;
//   - gosdk: github.com/modelcontextprotocol/go-sdk
//     oauthex.ParseWWWAuthenticate.
//
// BenchmarkParseChallenges/lib=<library>/in=<input> times one parse of a whole
// header into challenges with their parameters, on the seed 403 header of an
// MCP server, an expired-token 401 and a DPoP+Bearer line. It times parsing
// only: stepup's typed OAuth view ([github.com/stepup-go/stepup.Challenge.OAuth])
// is left out because no peer has an equivalent.
//
// TestParseCorrectness feeds every library those inputs and a set of
// discriminating vectors from the design notes (DPoP before Bearer, two field
// lines, an unknown scheme first, a token68, duplicate parameters, broken
// quoting) and decides, per library and input, whether it found the expected
// challenges with exactly the expected parameters and, for a malformed
// challenge, whether it kept it from being used. The test fails when stepup
// is wrong; the peers' results are computed, recorded and only printed.
//
// Run from the repository root:
//
//	scripts/bench.sh                      # all tables, and the checks
//	go test -run '^$' -bench ParseChallenges -benchmem ./examples/compare/parse
//	STEPUP_TABLE=1 go test -run ParseCorrectness -v ./examples/compare/parse
package parse
