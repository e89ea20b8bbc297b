package parse

import "net/http"

// input is one WWW-Authenticate header and what a correct parser makes of it.
type input struct {
	name   string
	lines  []string // field lines, in order
	status int      // status of the response handed to distribution; 0 means 401
	want   want
}

// want is the expected outcome. find lists challenges a library must return
// usable, with exactly these parameters; reject lists schemes of which it must
// return no usable challenge because the header's challenge is malformed.
// Challenges of other schemes may be returned or dropped: a Bearer client has
// no use for them.
type want struct {
	find   []challenge
	reject []string
}

// challenge is the library-neutral form every result is reduced to.
type challenge struct {
	scheme  string            // lower-cased
	token68 string            // only stepup reports token68 at all
	params  map[string]string // names lower-cased, values unescaped
	usable  bool              // false when the library flagged the challenge as malformed
}

func (in input) header() http.Header {
	return http.Header{"Www-Authenticate": in.lines}
}

// The three headers of the speed comparison.
var (
	seed403 = input{
		name:  "seed403",
		lines: []string{`Bearer error="insufficient_scope", scope="resource:tools:custom_scope", resource_metadata="https://example.com/.well-known/oauth-protected-resource/mcp", error_description="Tool 'custom-tool' requires additional scope"`},
		want: want{find: []challenge{{scheme: "bearer", params: map[string]string{
			"error":             "insufficient_scope",
			"scope":             "resource:tools:custom_scope",
			"resource_metadata": "https://example.com/.well-known/oauth-protected-resource/mcp",
			"error_description": "Tool 'custom-tool' requires additional scope",
		}}}},
	}
	expired401 = input{
		name:  "expired401",
		lines: []string{`Bearer realm="example", error="invalid_token", error_description="The access token expired"`},
		want: want{find: []challenge{{scheme: "bearer", params: map[string]string{
			"realm": "example", "error": "invalid_token", "error_description": "The access token expired",
		}}}},
	}
	dpopBearer = input{
		name:  "dpopBearer",
		lines: []string{`DPoP algs="ES256 PS256", error="use_dpop_nonce", Bearer scope="a b", error="insufficient_scope"`},
		want: want{find: []challenge{
			{scheme: "dpop", params: map[string]string{"algs": "ES256 PS256", "error": "use_dpop_nonce"}},
			{scheme: "bearer", params: map[string]string{"scope": "a b", "error": "insufficient_scope"}},
		}},
	}
)

// benchInputs are timed by BenchmarkParseChallenges.
var benchInputs = []input{seed403, expired401, dpopBearer}

// tableInputs are judged by TestParseCorrectness. Every input but the last is
// handed to distribution on a 401, because ResponseChallenges parses nothing
// on any other status; the last row shows what that means for a 403.
var tableInputs = []input{
	seed403, expired401, dpopBearer,
	{
		name:  "bws-around-equals",
		lines: []string{`Bearer error = "invalid_token" , realm= "x"`},
		want:  want{find: []challenge{{scheme: "bearer", params: map[string]string{"error": "invalid_token", "realm": "x"}}}},
	},
	{
		name:  "escaped-quotes",
		lines: []string{`Bearer error_description="say \"hi\" \\ bye", error="invalid_token"`},
		want: want{find: []challenge{{scheme: "bearer", params: map[string]string{
			"error_description": `say "hi" \ bye`, "error": "invalid_token",
		}}}},
	},
	{
		name:  "dpop-then-bearer",
		lines: []string{`DPoP algs="ES256 PS256", Bearer realm="mcp", error="invalid_token"`},
		want: want{find: []challenge{
			{scheme: "dpop", params: map[string]string{"algs": "ES256 PS256"}},
			{scheme: "bearer", params: map[string]string{"realm": "mcp", "error": "invalid_token"}},
		}},
	},
	{
		name:  "two-field-lines",
		lines: []string{`Basic realm="x"`, `Bearer error="insufficient_scope", scope="a"`},
		want: want{find: []challenge{
			{scheme: "basic", params: map[string]string{"realm": "x"}},
			{scheme: "bearer", params: map[string]string{"error": "insufficient_scope", "scope": "a"}},
		}},
	},
	{
		name:  "empty-elements",
		lines: []string{`, ,Bearer , error="invalid_token" ,, realm="x",`},
		want:  want{find: []challenge{{scheme: "bearer", params: map[string]string{"error": "invalid_token", "realm": "x"}}}},
	},
	{
		name:  "unknown-scheme-first",
		lines: []string{`Newauth realm="apps", type=1, title="Login to \"apps\"", Bearer realm="simple"`},
		want:  want{find: []challenge{{scheme: "bearer", params: map[string]string{"realm": "simple"}}}},
	},
	{
		name:  "duplicate-scope",
		lines: []string{`Bearer scope="a", scope="b", error="insufficient_scope"`},
		want:  want{reject: []string{"bearer"}},
	},
	{
		name:  "token68-first",
		lines: []string{`Negotiate YIIBhwYGKwYBBQUCoII=, Bearer realm="x"`},
		want:  want{find: []challenge{{scheme: "bearer", params: map[string]string{"realm": "x"}}}},
	},
	{
		name:  "unterminated-quote",
		lines: []string{`Bearer error="insufficient_scope, scope="a"`},
		want:  want{reject: []string{"bearer"}},
	},
	{
		name:  "single-quotes",
		lines: []string{`Bearer scope='a b'`},
		want:  want{reject: []string{"bearer"}},
	},
	{
		name:  "trailing-junk",
		lines: []string{`Bearer realm="x" junk`},
		want:  want{reject: []string{"bearer"}},
	},
	{
		name:   "seed403-on-403",
		lines:  seed403.lines,
		status: http.StatusForbidden,
		want:   seed403.want,
	},
}
