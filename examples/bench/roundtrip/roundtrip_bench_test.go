package roundtrip

import (
	"bytes"
	"io"
	"maps"
	"net/http"
	"reflect"
	"testing"
	"time"

	"github.com/stepup-go/stepup"
	"github.com/stepup-go/stepup/dpop"
	"golang.org/x/oauth2"
)

const (
	hotResource = "https://api.example.com/"
	hotURL      = "https://api.example.com/v1/items?limit=10"
)

var okBodyBytes = []byte(`{"items":[]}`)

// okBase answers every request with 200 and okBody, without a network.
type okBase struct {
	// onRequest sees each request the base receives. It is set only for
	// the check that precedes the timed loop.
	onRequest func(*http.Request)
}

// okResponse is a response with its body and header value, so that one
// allocation makes all three: the base stays light, and the wrappers'
// costs are not diluted by a stand-in transport's.
type okResponse struct {
	resp        http.Response
	body        okBody
	contentType [1]string
}

// okBody is a fixed body. io.Copy to io.Discard uses its WriteTo, which
// does not allocate.
type okBody struct{ bytes.Reader }

func (*okBody) Close() error { return nil }

// RoundTrip builds a new response, header map included, on every call:
// callers (and the wrappers under test) may modify what they get, so a
// shared one would be a bug in a real base. All three variants pay for it
// alike.
func (b *okBase) RoundTrip(req *http.Request) (*http.Response, error) {
	if b.onRequest != nil {
		b.onRequest(req)
	}
	r := &okResponse{contentType: [1]string{"application/json"}}
	r.body.Reset(okBodyBytes)
	r.resp = http.Response{
		Status:        "200 OK",
		StatusCode:    http.StatusOK,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        http.Header{"Content-Type": r.contentType[:]},
		Body:          &r.body,
		ContentLength: int64(len(okBodyBytes)),
		Request:       req,
	}
	return &r.resp, nil
}

// floorTransport does the least any RoundTripper that attaches a token must
// do without modifying the caller's request: copy the request and its
// header map, and set Authorization. It knows nothing of origins, expiry
// or challenges; stepup's time over it is what its own logic costs.
type floorTransport struct {
	base http.RoundTripper
	auth []string
}

func (t *floorTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	r2 := new(http.Request)
	*r2 = *req
	h := maps.Clone(req.Header)
	h["Authorization"] = t.auth
	r2.Header = h
	return t.base.RoundTrip(r2)
}

// Typed package-level sinks keep the compiler from dropping the work.
var (
	sinkResp *http.Response
	sinkN    int64
)

type hotVariant struct {
	name string
	// wrap returns the RoundTripper to time around base, and the
	// Authorization header base must see ("" for none).
	wrap func(tb testing.TB, base http.RoundTripper, tok *oauth2.Token) (http.RoundTripper, string)
}

var hotVariants = []hotVariant{
	{"base", func(_ testing.TB, base http.RoundTripper, _ *oauth2.Token) (http.RoundTripper, string) {
		return base, ""
	}},
	{"oauth2", func(_ testing.TB, base http.RoundTripper, tok *oauth2.Token) (http.RoundTripper, string) {
		return &oauth2.Transport{Source: oauth2.StaticTokenSource(tok), Base: base}, "Bearer " + tok.AccessToken
	}},
	{"floor", func(_ testing.TB, base http.RoundTripper, tok *oauth2.Token) (http.RoundTripper, string) {
		auth := "Bearer " + tok.AccessToken
		return &floorTransport{base: base, auth: []string{auth}}, auth
	}},
	{"stepup", func(tb testing.TB, base http.RoundTripper, tok *oauth2.Token) (http.RoundTripper, string) {
		ts, err := stepup.NewTokenSource(hotResource, tok)
		if err != nil {
			tb.Fatal(err)
		}
		return &stepup.Transport{Base: base, Source: ts}, "Bearer " + tok.AccessToken
	}},
	// stepup with the token bound to a DPoP key (RFC 9449): the same path
	// plus an ES256 proof per request.
	{"dpop", func(tb testing.TB, base http.RoundTripper, tok *oauth2.Token) (http.RoundTripper, string) {
		key, err := dpop.GenerateKey()
		if err != nil {
			tb.Fatal(err)
		}
		bound := *tok
		bound.TokenType = dpop.Scheme
		ts, err := stepup.NewTokenSource(hotResource, &bound, stepup.WithDPoP(key))
		if err != nil {
			tb.Fatal(err)
		}
		return &stepup.Transport{Base: base, Source: ts}, "DPoP " + tok.AccessToken
	}},
}

// BenchmarkRoundTripNoChallenge times one round trip that draws no
// challenge, the path every request of a client takes, through each
// variant. The request is built once: a RoundTripper must not modify it
// (checked before timing), so reusing it is what a retrying caller does.
func BenchmarkRoundTripNoChallenge(b *testing.B) {
	// An expiry, as real tokens have, so that both wrappers pay for their
	// validity check.
	tok := &oauth2.Token{AccessToken: "eyJhbGciOiJSUzI1NiJ9.hot-path-access-token", TokenType: "Bearer", Expiry: time.Now().Add(time.Hour)}
	for _, v := range hotVariants {
		b.Run("wrapper="+v.name, func(b *testing.B) {
			req, err := http.NewRequest(http.MethodGet, hotURL, nil)
			if err != nil {
				b.Fatal(err)
			}
			req.Header.Set("Accept", "application/json")
			req.Header.Set("User-Agent", "stepup-bench/1")

			checkNoMutation(b, v, tok, req)

			rt, _ := v.wrap(b, &okBase{}, tok)
			b.ReportAllocs()
			for b.Loop() {
				resp, err := rt.RoundTrip(req)
				if err != nil {
					b.Fatal(err)
				}
				// A caller reads and closes the body; io.Discard takes it
				// without allocating.
				sinkN, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				sinkResp = resp
			}
		})
	}
}

// checkNoMutation sends req once through the variant and fails unless the
// base saw the expected Authorization header and req came back as it went
// in: the timed loop reuses req, which is only sound if nothing writes to it.
func checkNoMutation(tb testing.TB, v hotVariant, tok *oauth2.Token, req *http.Request) {
	tb.Helper()
	wantHeader := req.Header.Clone()
	wantURL := req.URL.String()
	var seenAuth string
	var seen bool
	rt, wantAuth := v.wrap(tb, &okBase{onRequest: func(r *http.Request) {
		seen = true
		seenAuth = r.Header.Get("Authorization")
	}}, tok)

	resp, err := rt.RoundTrip(req)
	if err != nil {
		tb.Fatalf("%s: %v", v.name, err)
	}
	resp.Body.Close()
	switch {
	case !seen:
		tb.Fatalf("%s: the base was not called", v.name)
	case seenAuth != wantAuth:
		tb.Fatalf("%s: base saw Authorization %q, want %q", v.name, seenAuth, wantAuth)
	case !reflect.DeepEqual(req.Header, wantHeader):
		tb.Fatalf("%s modified the caller's request header: %v, was %v", v.name, req.Header, wantHeader)
	case req.URL.String() != wantURL:
		tb.Fatalf("%s modified the caller's request URL: %s, was %s", v.name, req.URL, wantURL)
	}
}

// TestRoundTripNoChallengeVariants runs the benchmark's check alone, so
// that `go test` proves the variants do what the table says they do.
func TestRoundTripNoChallengeVariants(t *testing.T) {
	tok := &oauth2.Token{AccessToken: "access", TokenType: "Bearer", Expiry: time.Now().Add(time.Hour)}
	for _, v := range hotVariants {
		req, err := http.NewRequest(http.MethodGet, hotURL, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Accept", "application/json")
		checkNoMutation(t, v, tok, req)
	}
}
