package parse

import (
	"net/http"
	"testing"

	ctdauth "github.com/containerd/containerd/v2/core/remotes/docker/auth"
	distchallenge "github.com/docker/distribution/registry/client/auth/challenge"
	"github.com/modelcontextprotocol/go-sdk/oauthex"
	"github.com/stepup-go/stepup"
)

// Package-level sinks: the results escape, so the compiler cannot drop the
// parse. Typed rather than one `any`, because boxing a slice into an
// interface would add an allocation to every iteration.
var (
	sinkStepup       []stepup.Challenge
	sinkDistribution []distchallenge.Challenge
	sinkContainerd   []ctdauth.Challenge
	sinkGoSDK        []oauthex.Challenge
	sinkErr          error
)

// BenchmarkParseChallenges times one parse of a whole WWW-Authenticate header
// per library and input, each library through its public entry point. Every
// call starts from an http.Header (or the http.Response distribution wants),
// built once outside the loop, so all pay the same header lookup.
func BenchmarkParseChallenges(b *testing.B) {
	run := map[string]func(b *testing.B, h http.Header){
		"stepup": func(b *testing.B, h http.Header) {
			for b.Loop() {
				sinkStepup, sinkErr = stepup.ParseChallenges(h)
			}
		},
		"distribution": func(b *testing.B, h http.Header) {
			// ResponseChallenges parses only the header of a 401 and returns
			// nil for any other status, a 403 included: on a 403 it would be
			// timed doing nothing.
			resp := &http.Response{StatusCode: http.StatusUnauthorized, Header: h}
			for b.Loop() {
				sinkDistribution = distchallenge.ResponseChallenges(resp)
			}
		},
		"containerd": func(b *testing.B, h http.Header) {
			for b.Loop() {
				sinkContainerd = ctdauth.ParseAuthHeader(h)
			}
		},
		"gosdk": func(b *testing.B, h http.Header) {
			for b.Loop() {
				sinkGoSDK, sinkErr = oauthex.ParseWWWAuthenticate(h.Values("WWW-Authenticate"))
			}
		},
	}
	for _, lib := range libraries {
		bench := run[lib.name]
		if bench == nil {
			b.Fatalf("no benchmark for library %s", lib.name)
		}
		b.Run("lib="+lib.name, func(b *testing.B) {
			for _, in := range benchInputs {
				h := in.header()
				b.Run("in="+in.name, func(b *testing.B) {
					b.ReportAllocs()
					bench(b, h)
				})
			}
		})
	}
}
