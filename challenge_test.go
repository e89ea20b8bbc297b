package stepup

import (
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// chWant is the expected parse of one challenge.
type chWant struct {
	scheme  string
	token68 string
	params  []string // name, value, name, value…; for a bad challenge nil means "not checked", and so does token68 ""
	bad     bool     // Err is a *SyntaxError
}

// chRequire checks the challenges against want, in order.
func chRequire(t *testing.T, want []chWant, got []Challenge) {
	t.Helper()
	require.Len(t, got, len(want), "challenges: %+v", got)
	for i, w := range want {
		c := got[i]
		assert.Equal(t, w.scheme, c.Scheme, "challenge %d: scheme", i)
		if !w.bad || w.token68 != "" {
			assert.Equal(t, w.token68, c.Token68, "challenge %d: token68", i)
		}
		if !w.bad || w.params != nil {
			var ps []string
			for _, p := range c.Params {
				ps = append(ps, p.Name, p.Value)
			}
			assert.Equal(t, w.params, ps, "challenge %d: params", i)
		}
		if w.bad {
			var se *SyntaxError
			assert.ErrorAs(t, c.Err, &se, "challenge %d", i)
			assert.ErrorIs(t, c.Err, ErrMalformedChallenge, "challenge %d", i)
		} else {
			assert.NoError(t, c.Err, "challenge %d", i)
		}
	}
}

// chParse parses lines and requires that no limit was hit.
func chParse(t *testing.T, lines ...string) []Challenge {
	t.Helper()
	cs, err := ParseChallengeValues(lines...)
	require.NoError(t, err)
	return cs
}

// chOAuth returns the OAuth view of the only challenge of lines.
func chOAuth(t *testing.T, lines ...string) (OAuthChallenge, error) {
	t.Helper()
	cs := chParse(t, lines...)
	require.Len(t, cs, 1)
	return cs[0].OAuth()
}

func TestParseChallengesVectors(t *testing.T) {
	const (
		prm    = "https://mcp.example.com/.well-known/oauth-protected-resource"
		claims = "eyJhY2Nlc3NfdG9rZW4iOnsiYWNycyI6eyJlc3NlbnRpYWwiOnRydWUsInZhbHVlIjoiY3AxIn19fQ=="
	)
	for _, tc := range []struct {
		name  string
		lines []string
		want  []chWant
		// check, when set, looks further at the parse.
		check func(t *testing.T, cs []Challenge)
	}{{
		// RFC 6750 §3: a bare Bearer is accepted.
		name:  "bare-bearer",
		lines: []string{`Bearer`},
		want:  []chWant{{scheme: "Bearer"}},
		check: func(t *testing.T, cs []Challenge) {
			o, err := cs[0].OAuth()
			require.NoError(t, err)
			assert.Equal(t, OAuthChallenge{Scheme: "Bearer", MaxAge: NoMaxAge}, o)
		},
	}, {
		name:  "expired-token",
		lines: []string{`Bearer realm="example", error="invalid_token", error_description="The access token expired"`},
		want: []chWant{{scheme: "Bearer", params: []string{
			"realm", "example", "error", "invalid_token", "error_description", "The access token expired"}}},
		check: func(t *testing.T, cs []Challenge) {
			o, err := cs[0].OAuth()
			require.NoError(t, err)
			assert.Equal(t, ErrorInvalidToken, o.Error)
			assert.Equal(t, "example", o.Realm)
			assert.Equal(t, "The access token expired", o.ErrorDescription)
		},
	}, {
		name:  "insufficient-scope",
		lines: []string{`Bearer error="insufficient_scope", scope="files:read files:write", resource_metadata="` + prm + `", error_description="Additional file write permission required"`},
		want: []chWant{{scheme: "Bearer", params: []string{
			"error", "insufficient_scope", "scope", "files:read files:write",
			"resource_metadata", prm, "error_description", "Additional file write permission required"}}},
		check: func(t *testing.T, cs []Challenge) {
			o, err := cs[0].OAuth()
			require.NoError(t, err)
			assert.Equal(t, ErrorInsufficientScope, o.Error)
			assert.True(t, o.Scope.Equal(Scopes{"files:write", "files:read"}), "scope %v", o.Scope)
			assert.Equal(t, prm, o.ResourceMetadata)
		},
	}, {
		// OWS after the comma, as left by obs-fold unfolding.
		name:  "ows-after-comma",
		lines: []string{`Bearer resource_metadata="` + prm + `",                          scope="files:read"`},
		want:  []chWant{{scheme: "Bearer", params: []string{"resource_metadata", prm, "scope", "files:read"}}},
	}, {
		// RFC 9110 §11.1, RFC 9110 §11.2: scheme and names are case-insensitive, and
		// kept as received.
		name:  "upper-case-names",
		lines: []string{`BEARER ERROR="insufficient_scope", SCOPE="a"`},
		want:  []chWant{{scheme: "BEARER", params: []string{"ERROR", "insufficient_scope", "SCOPE", "a"}}},
		check: func(t *testing.T, cs []Challenge) {
			assert.True(t, cs[0].IsScheme("Bearer"))
			v, ok := cs[0].Param("scope")
			assert.True(t, ok)
			assert.Equal(t, "a", v)
			o, err := cs[0].OAuth()
			require.NoError(t, err)
			assert.Equal(t, "BEARER", o.Scheme)
			assert.Equal(t, ErrorInsufficientScope, o.Error)
			assert.Equal(t, Scopes{"a"}, o.Scope)
		},
	}, {
		// RFC 9110 §5.6.3: BWS around "=", OWS around ",".
		name:  "bws-around-equals",
		lines: []string{`Bearer error = "invalid_token" , realm= "x"`},
		want:  []chWant{{scheme: "Bearer", params: []string{"error", "invalid_token", "realm", "x"}}},
	}, {
		// RFC 9110 §5.6.4: quoted-pairs.
		name:  "escaped-quotes",
		lines: []string{`Bearer error_description="say \"hi\" \\ bye", error="invalid_token"`},
		want:  []chWant{{scheme: "Bearer", params: []string{"error_description", `say "hi" \ bye`, "error", "invalid_token"}}},
	}, {
		// RFC 9110 §11.6.1: two challenges on one line.
		name:  "dpop-then-bearer",
		lines: []string{`DPoP algs="ES256 PS256", Bearer realm="mcp", error="invalid_token"`},
		want: []chWant{
			{scheme: "DPoP", params: []string{"algs", "ES256 PS256"}},
			{scheme: "Bearer", params: []string{"realm", "mcp", "error", "invalid_token"}},
		},
		check: func(t *testing.T, cs []Challenge) {
			o, err := cs[0].OAuth()
			require.NoError(t, err)
			assert.Equal(t, []string{"ES256", "PS256"}, o.Algs)
		},
	}, {
		// RFC 9110 §11.6.1, the RoundTripper contract: every field line is read.
		name:  "two-field-lines",
		lines: []string{`Basic realm="x"`, `Bearer error="insufficient_scope", scope="a"`},
		want: []chWant{
			{scheme: "Basic", params: []string{"realm", "x"}},
			{scheme: "Bearer", params: []string{"error", "insufficient_scope", "scope", "a"}},
		},
	}, {
		// RFC 9110 §5.6.1.2: empty list elements are skipped.
		name:  "empty-elements",
		lines: []string{`, ,Bearer , error="invalid_token" ,, realm="x",`},
		want:  []chWant{{scheme: "Bearer", params: []string{"error", "invalid_token", "realm", "x"}}},
	}, {
		// RFC 9110 §11.3: an unknown scheme does not hide the Bearer one.
		name:  "unknown-scheme-first",
		lines: []string{`Newauth realm="apps", type=1, title="Login to \"apps\"", Bearer realm="simple"`},
		want: []chWant{
			{scheme: "Newauth", params: []string{"realm", "apps", "type", "1", "title", `Login to "apps"`}},
			{scheme: "Bearer", params: []string{"realm", "simple"}},
		},
		check: func(t *testing.T, cs []Challenge) {
			_, err := cs[0].OAuth()
			assert.ErrorIs(t, err, ErrNotOAuth)
		},
	}, {
		// RFC 9110 §11.2, RFC 6750 §3: a duplicate makes the challenge unusable,
		// neither value is picked.
		name:  "duplicate-scope",
		lines: []string{`Bearer scope="a", scope="b", error="insufficient_scope"`},
		want:  []chWant{{scheme: "Bearer", bad: true}},
		check: func(t *testing.T, cs []Challenge) {
			_, err := cs[0].OAuth()
			assert.ErrorIs(t, err, ErrMalformedChallenge)
		},
	}, {
		// RFC 9110 §11.2: names compare case-insensitively for duplicates too.
		name:  "duplicate-name-case",
		lines: []string{`Bearer Scope="a", scope="b"`},
		want:  []chWant{{scheme: "Bearer", bad: true}},
	}, {
		// token68 with "=" padding, then another challenge.
		name:  "token68-first",
		lines: []string{`Negotiate YIIBhwYGKwYBBQUCoII=, Bearer realm="x"`},
		want: []chWant{
			{scheme: "Negotiate", token68: "YIIBhwYGKwYBBQUCoII="},
			{scheme: "Bearer", params: []string{"realm", "x"}},
		},
	}, {
		// A token68 Bearer has no OAuth parameters: a bare Bearer.
		name:  "bearer-token68",
		lines: []string{`Bearer abc123`},
		want:  []chWant{{scheme: "Bearer", token68: "abc123"}},
		check: func(t *testing.T, cs []Challenge) {
			o, err := cs[0].OAuth()
			require.NoError(t, err)
			assert.Equal(t, OAuthChallenge{Scheme: "Bearer", MaxAge: NoMaxAge}, o)
		},
	}, {
		// The quoted-string ends at the second DQUOTE; `a"` is left over
		// with an unterminated quote.
		name:  "unterminated-quote",
		lines: []string{`Bearer error="insufficient_scope, scope="a"`},
		want:  []chWant{{scheme: "Bearer", bad: true, params: []string{"error", "insufficient_scope, scope="}}},
	}, {
		// Single quotes are not quotes: `'a` is a token, ` b'` garbage.
		name:  "single-quotes",
		lines: []string{`Bearer scope='a b'`},
		want:  []chWant{{scheme: "Bearer", bad: true, params: []string{"scope", "'a"}}},
	}, {
		// ':' and '/' are not tchar: an unquoted URL is rejected.
		name:  "unquoted-url",
		lines: []string{`Bearer resource_metadata=https://rs.example/.well-known/oauth-protected-resource`},
		want:  []chWant{{scheme: "Bearer", bad: true}},
	}, {
		// No scope is guessed from a broken token.
		name:  "unquoted-colon",
		lines: []string{`Bearer scope=files:write, error=insufficient_scope`},
		want:  []chWant{{scheme: "Bearer", bad: true}},
		check: func(t *testing.T, cs []Challenge) {
			o, err := cs[0].OAuth()
			assert.ErrorIs(t, err, ErrMalformedChallenge)
			assert.Empty(t, o.Scope)
		},
	}, {
		name:  "acr-values",
		lines: []string{`Bearer error="insufficient_user_authentication", error_description="A different authentication level is required", acr_values="myACR"`},
		want: []chWant{{scheme: "Bearer", params: []string{
			"error", "insufficient_user_authentication",
			"error_description", "A different authentication level is required",
			"acr_values", "myACR"}}},
		check: func(t *testing.T, cs []Challenge) {
			o, err := cs[0].OAuth()
			require.NoError(t, err)
			assert.Equal(t, ErrorInsufficientUserAuthentication, o.Error)
			assert.Equal(t, []string{"myACR"}, o.ACRValues)
			assert.Equal(t, NoMaxAge, o.MaxAge)
		},
	}, {
		// RFC 9110 §11.2, RFC 9470 §3: token or quoted-string; invalid max_age is
		// dropped without failing the challenge.
		name:  "max-age",
		lines: []string{`Bearer error="insufficient_user_authentication", max_age=5, Bearer max_age="5", Bearer max_age="-1", Bearer max_age="5s"`},
		want: []chWant{
			{scheme: "Bearer", params: []string{"error", "insufficient_user_authentication", "max_age", "5"}},
			{scheme: "Bearer", params: []string{"max_age", "5"}},
			{scheme: "Bearer", params: []string{"max_age", "-1"}},
			{scheme: "Bearer", params: []string{"max_age", "5s"}},
		},
		check: func(t *testing.T, cs []Challenge) {
			for i, want := range []int{5, 5, NoMaxAge, NoMaxAge} {
				o, err := cs[i].OAuth()
				require.NoError(t, err)
				assert.Equal(t, want, o.MaxAge, "challenge %d", i)
			}
		},
	}, {
		name:  "acr-list-with-scope",
		lines: []string{`Bearer error="insufficient_user_authentication", acr_values="urn:a urn:b", max_age="0", scope="payments"`},
		want: []chWant{{scheme: "Bearer", params: []string{
			"error", "insufficient_user_authentication", "acr_values", "urn:a urn:b", "max_age", "0", "scope", "payments"}}},
		check: func(t *testing.T, cs []Challenge) {
			o, err := cs[0].OAuth()
			require.NoError(t, err)
			assert.Equal(t, []string{"urn:a", "urn:b"}, o.ACRValues)
			assert.Equal(t, 0, o.MaxAge)
			assert.Equal(t, Scopes{"payments"}, o.Scope)
		},
	}, {
		name:  "dpop-nonce",
		lines: []string{`DPoP error="use_dpop_nonce", error_description="Resource server requires nonce in DPoP proof"`},
		want: []chWant{{scheme: "DPoP", params: []string{
			"error", "use_dpop_nonce", "error_description", "Resource server requires nonce in DPoP proof"}}},
		check: func(t *testing.T, cs []Challenge) {
			o, err := cs[0].OAuth()
			require.NoError(t, err)
			assert.Equal(t, SchemeDPoP, o.Scheme)
			assert.Equal(t, ErrorUseDPoPNonce, o.Error)
		},
	}, {
		// Entra claims challenge: an empty realm is a value; claims decode to JSON.
		name:  "claims",
		lines: []string{`Bearer realm="", authorization_uri="https://login.microsoftonline.com/common/oauth2/authorize", error="insufficient_claims", claims="` + claims + `"`},
		want: []chWant{{scheme: "Bearer", params: []string{
			"realm", "", "authorization_uri", "https://login.microsoftonline.com/common/oauth2/authorize",
			"error", "insufficient_claims", "claims", claims}}},
		check: func(t *testing.T, cs []Challenge) {
			v, ok := cs[0].Param("realm")
			assert.True(t, ok)
			assert.Empty(t, v)
			o, err := cs[0].OAuth()
			require.NoError(t, err)
			assert.Equal(t, ErrorInsufficientClaims, o.Error)
			assert.Equal(t, `{"access_token":{"acrs":{"essential":true,"value":"cp1"}}}`, string(o.Claims))
		},
	}, {
		name:  "trailing-junk",
		lines: []string{`Bearer realm="x" junk`},
		want:  []chWant{{scheme: "Bearer", bad: true, params: []string{"realm", "x"}}},
	}, {
		// qdtext excludes CTLs.
		name:  "control-character",
		lines: []string{"Bearer error=\"invalid_token\x00\""},
		want:  []chWant{{scheme: "Bearer", bad: true}},
	}, {
		name:  "empty",
		lines: []string{""},
		want:  []chWant{},
	}, {
		name:  "empty/comma",
		lines: []string{","},
		want:  []chWant{},
	}, {
		name:  "empty/no-line",
		lines: nil,
		want:  []chWant{},
	}, {
		name:  "empty-scope",
		lines: []string{`Bearer error="insufficient_scope", scope=""`},
		want:  []chWant{{scheme: "Bearer", params: []string{"error", "insufficient_scope", "scope", ""}}},
		check: func(t *testing.T, cs []Challenge) {
			o, err := cs[0].OAuth()
			require.NoError(t, err)
			assert.Nil(t, o.Scope)
		},
	}, {
		// Repeating a challenge is the guard's business, not the parser's.
		name:  "repeated-challenge",
		lines: []string{`Bearer error="insufficient_scope", scope="a"`},
		want:  []chWant{{scheme: "Bearer", params: []string{"error", "insufficient_scope", "scope", "a"}}},
	}, {
		// Parsed as sent; RFC 9728 §3.3 validation happens elsewhere.
		name:  "foreign-resource-metadata",
		lines: []string{`Bearer resource_metadata="https://evil.example/.well-known/oauth-protected-resource"`},
		want:  []chWant{{scheme: "Bearer", params: []string{"resource_metadata", "https://evil.example/.well-known/oauth-protected-resource"}}},
		check: func(t *testing.T, cs []Challenge) {
			o, err := cs[0].OAuth()
			require.NoError(t, err)
			assert.Equal(t, "https://evil.example/.well-known/oauth-protected-resource", o.ResourceMetadata)
		},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			cs := chParse(t, tc.lines...)
			chRequire(t, tc.want, cs)
			if len(tc.want) == 0 {
				assert.Nil(t, cs)
			}
			if tc.check != nil && !t.Failed() {
				tc.check(t, cs)
			}
		})
	}
}

func TestParseChallengesGrammar(t *testing.T) {
	const tchars = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
	for _, tc := range []struct {
		name string
		line string
		want []chWant
	}{
		// token (RFC 9110 §5.6.2): every tchar, as scheme, name and value.
		{"token/all-tchar", "X" + tchars + " " + tchars + "=" + tchars,
			[]chWant{{scheme: "X" + tchars, params: []string{tchars, tchars}}}},
		// RFC 9110 §11.5: a token realm is accepted.
		{"token/value", `Bearer realm=example`,
			[]chWant{{scheme: "Bearer", params: []string{"realm", "example"}}}},
		// token68 (RFC 9110 §11.2).
		{"token68/chars", `Basic aZ09-._~+/`,
			[]chWant{{scheme: "Basic", token68: "aZ09-._~+/"}}},
		{"token68/padding", `Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==`,
			[]chWant{{scheme: "Basic", token68: "QWxhZGRpbjpvcGVuIHNlc2FtZQ=="}}},
		{"token68/OWS-before-comma", "Basic abc== \t, Bearer realm=\"x\"",
			[]chWant{{scheme: "Basic", token68: "abc=="}, {scheme: "Bearer", params: []string{"realm", "x"}}}},
		// "realm=" is all token68: a token68, not a param without value.
		{"token68/looks-like-param", `Bearer realm=`,
			[]chWant{{scheme: "Bearer", token68: "realm="}}},
		{"token68/only-padding", `Basic ==`,
			[]chWant{{scheme: "", bad: true}}},
		// quoted-string (RFC 9110 §5.6.4).
		{"quoted/empty", `Bearer realm=""`,
			[]chWant{{scheme: "Bearer", params: []string{"realm", ""}}}},
		{"quoted/specials", `Bearer realm=", =;:/?@[]{}()<>"`,
			[]chWant{{scheme: "Bearer", params: []string{"realm", ", =;:/?@[]{}()<>"}}}},
		// RFC 9110 §5.6.4: a quoted-pair is the octet after the backslash,
		// whatever it is.
		{"quoted-pair/quote-backslash", `Bearer realm="\"\\"`,
			[]chWant{{scheme: "Bearer", params: []string{"realm", `"\`}}}},
		{"quoted-pair/letter", `Bearer realm="\a\b\c"`,
			[]chWant{{scheme: "Bearer", params: []string{"realm", "abc"}}}},
		{"quoted-pair/HTAB-SP", "Bearer realm=\"a\\\tb\\ c\"",
			[]chWant{{scheme: "Bearer", params: []string{"realm", "a\tb c"}}}},
		{"quoted-pair/obs-text", "Bearer realm=\"\\\xff\\\x80\"",
			[]chWant{{scheme: "Bearer", params: []string{"realm", "\xff\x80"}}}},
		// qdtext: HTAB, SP and obs-text (0x80-0xFF) are kept as they are.
		{"qdtext/HTAB", "Bearer realm=\"a\tb\"",
			[]chWant{{scheme: "Bearer", params: []string{"realm", "a\tb"}}}},
		{"qdtext/HTAB-long", "Bearer realm=\"0123456789\t0123456789\"",
			[]chWant{{scheme: "Bearer", params: []string{"realm", "0123456789\t0123456789"}}}},
		{"qdtext/obs-text", "Bearer realm=\"\x80caf\xc3\xa9\xff\"",
			[]chWant{{scheme: "Bearer", params: []string{"realm", "\x80caf\xc3\xa9\xff"}}}},
		{"qdtext/obs-text-long", "Bearer realm=\"\x80\x81\x82\x83\x84\x85\x86\x87\x88\xfe\xff\"",
			[]chWant{{scheme: "Bearer", params: []string{"realm", "\x80\x81\x82\x83\x84\x85\x86\x87\x88\xfe\xff"}}}},
		// RFC 9110 §5.6.3: BWS around "=".
		{"BWS/SP", `Bearer realm = "x", error =invalid_token`,
			[]chWant{{scheme: "Bearer", params: []string{"realm", "x", "error", "invalid_token"}}}},
		{"BWS/HTAB", "Bearer realm\t=\t\"x\"",
			[]chWant{{scheme: "Bearer", params: []string{"realm", "x"}}}},
		{"BWS/first-param", `Bearer realm  =  x`,
			[]chWant{{scheme: "Bearer", params: []string{"realm", "x"}}}},
		// OWS around ",".
		{"OWS/comma", "Bearer realm=\"x\"\t ,\t error=\"y\" , DPoP algs=ES256",
			[]chWant{{scheme: "Bearer", params: []string{"realm", "x", "error", "y"}}, {scheme: "DPoP", params: []string{"algs", "ES256"}}}},
		{"OWS/leading-trailing", " \tBearer realm=x \t",
			[]chWant{{scheme: "Bearer", params: []string{"realm", "x"}}}},
		// challenge = auth-scheme [ 1*SP ... ]: several SP are fine.
		{"SP/several", `Bearer    realm=x`,
			[]chWant{{scheme: "Bearer", params: []string{"realm", "x"}}}},
		// RFC 9110 §11.6.1: "," within a challenge's params.
		{"empty/inside-challenge", `Bearer realm="x", , error="invalid_token"`,
			[]chWant{{scheme: "Bearer", params: []string{"realm", "x", "error", "invalid_token"}}}},
		{"empty/after-scheme", `Bearer ,, realm="x"`,
			[]chWant{{scheme: "Bearer", params: []string{"realm", "x"}}}},
		// RFC 9449 §7.2 example: a bare Bearer before a DPoP challenge.
		{"empty/bare-scheme-list", `Bearer, DPoP algs="ES256 PS256"`,
			[]chWant{{scheme: "Bearer"}, {scheme: "DPoP", params: []string{"algs", "ES256 PS256"}}}},
		// RFC 9110 §11.1, RFC 9110 §11.2: names fold, values are kept exactly.
		{"case/values-kept", `bEaReR Realm="MiXeD", ERROR=Invalid_Token`,
			[]chWant{{scheme: "bEaReR", params: []string{"Realm", "MiXeD", "ERROR", "Invalid_Token"}}}},
		// RFC 9110 §16.4.2: unknown params are kept by the parser.
		{"unknown-param", `Bearer foo=bar, realm="x"`,
			[]chWant{{scheme: "Bearer", params: []string{"foo", "bar", "realm", "x"}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			chRequire(t, tc.want, chParse(t, tc.line))
		})
	}
}

// A name that differs only in case is the same parameter (RFC 9110 §11.2).
func TestChallengeParam(t *testing.T) {
	c := chParse(t, `Bearer Realm="r", error="", scope=a`)[0]
	for _, tc := range []struct {
		name, value string
		ok          bool
	}{
		{"realm", "r", true},
		{"REALM", "r", true},
		{"error", "", true},
		{"Scope", "a", true},
		{"error_description", "", false},
		{"", "", false},
	} {
		v, ok := c.Param(tc.name)
		assert.Equal(t, tc.ok, ok, tc.name)
		assert.Equal(t, tc.value, v, tc.name)
	}
	assert.True(t, c.IsScheme("bearer"))
	assert.True(t, c.IsScheme("BEARER"))
	assert.False(t, c.IsScheme("Bear"))
	assert.False(t, c.IsScheme("DPoP"))
}

func TestChallengeString(t *testing.T) {
	for _, tc := range []struct {
		c    Challenge
		want string
	}{
		{Challenge{Scheme: "Bearer"}, "Bearer"},
		{Challenge{Scheme: "Negotiate", Token68: "abc=="}, "Negotiate abc=="},
		{Challenge{Scheme: "Bearer", Params: []Param{{"realm", "example"}}}, "Bearer realm=example"},
		{Challenge{Scheme: "Bearer", Params: []Param{{"realm", ""}, {"scope", "a b"}}}, `Bearer realm="", scope="a b"`},
		{Challenge{Scheme: "Bearer", Params: []Param{{"error_description", `say "hi" \ bye`}}}, `Bearer error_description="say \"hi\" \\ bye"`},
		{Challenge{Scheme: "Bearer", Params: []Param{{"x", "caf\xc3\xa9\t!"}}}, "Bearer x=\"caf\xc3\xa9\t!\""},
		{Challenge{Scheme: "DPoP", Params: []Param{{"algs", "ES256"}, {"resource_metadata", "https://rs/x"}}}, `DPoP algs=ES256, resource_metadata="https://rs/x"`},
	} {
		t.Run(tc.want, func(t *testing.T) {
			assert.Equal(t, tc.want, tc.c.String())
			// For a well-formed challenge the string parses back to it.
			back := chParse(t, tc.want)
			require.Len(t, back, 1)
			require.NoError(t, back[0].Err)
			assert.Equal(t, tc.c.Scheme, back[0].Scheme)
			assert.Equal(t, tc.c.Token68, back[0].Token68)
			assert.Equal(t, tc.c.Params, back[0].Params)
		})
	}
}

// RFC 9110 §11.6.1, RFC 9110 §5.3: field lines are one list joined by ",".
func TestParseChallengesFieldLines(t *testing.T) {
	t.Run("same as one line", func(t *testing.T) {
		split := chParse(t, `Bearer realm="a"`, `DPoP algs="ES256"`)
		joined := chParse(t, `Bearer realm="a", DPoP algs="ES256"`)
		assert.Equal(t, joined, split)
		chRequire(t, []chWant{
			{scheme: "Bearer", params: []string{"realm", "a"}},
			{scheme: "DPoP", params: []string{"algs", "ES256"}},
		}, split)
	})
	t.Run("auth-param line continues the challenge", func(t *testing.T) {
		chRequire(t, []chWant{
			{scheme: "Bearer", params: []string{"realm", "a", "error", "invalid_token", "scope", "s"}},
		}, chParse(t, `Bearer realm="a"`, `error="invalid_token"`, ` , scope=s`))
	})
	t.Run("duplicate across lines", func(t *testing.T) {
		cs := chParse(t, `Bearer scope="a"`, `scope="b"`)
		chRequire(t, []chWant{{scheme: "Bearer", bad: true}}, cs)
		var se *SyntaxError
		require.ErrorAs(t, cs[0].Err, &se)
		assert.Equal(t, 1, se.Line)
		assert.Equal(t, 0, se.Offset)
	})
	t.Run("quoted-string does not span lines", func(t *testing.T) {
		chRequire(t, []chWant{
			{scheme: "Bearer", bad: true},
			{scheme: "b", bad: true},
		}, chParse(t, `Bearer realm="a`, `b"`))
	})
	t.Run("unterminated quote ends with its line", func(t *testing.T) {
		chRequire(t, []chWant{
			{scheme: "Bearer", bad: true},
			{scheme: "DPoP", params: []string{"algs", "ES256", "x", `"`}},
		}, chParse(t, `Bearer realm="a\"`, `DPoP algs="ES\256", x="\""`))
	})
	t.Run("empty lines", func(t *testing.T) {
		chRequire(t, []chWant{{scheme: "Basic"}, {scheme: "Bearer"}}, chParse(t, "", "Basic", " ", "Bearer", ""))
	})
	t.Run("error positions", func(t *testing.T) {
		cs := chParse(t, `Basic realm="x"`, `Bearer realm="x" junk`)
		var se *SyntaxError
		require.ErrorAs(t, cs[1].Err, &se)
		assert.Equal(t, SyntaxError{Line: 1, Offset: 17, Reason: "expected ',' after element"}, *se)
		assert.Contains(t, se.Error(), "line 1, offset 17")
	})
	t.Run("http.Header", func(t *testing.T) {
		h := http.Header{}
		h.Add("WWW-Authenticate", `Basic realm="x"`)
		h.Add("www-authenticate", `Bearer error="insufficient_scope", scope="a"`)
		h.Add("Proxy-Authenticate", `Digest realm="p"`)
		cs, err := ParseChallenges(h)
		require.NoError(t, err)
		chRequire(t, []chWant{
			{scheme: "Basic", params: []string{"realm", "x"}},
			{scheme: "Bearer", params: []string{"error", "insufficient_scope", "scope", "a"}},
		}, cs)
		cs, err = ParseChallenges(http.Header{})
		assert.NoError(t, err)
		assert.Nil(t, cs)
	})
}

// requireLimit checks that err reports the limit named limit.
func requireLimit(t *testing.T, err error, limit string, max int) {
	t.Helper()
	var le *LimitError
	require.ErrorAs(t, err, &le)
	assert.Equal(t, LimitError{Limit: limit, Max: max}, *le)
	assert.ErrorIs(t, err, ErrChallengeLimit)
	assert.NotErrorIs(t, err, ErrMalformedChallenge)
	assert.Contains(t, err.Error(), limit)
}

func TestParseChallengesLimits(t *testing.T) {
	t.Run("MaxChallengeHeaderBytes", func(t *testing.T) {
		head := `Bearer realm="`
		at := head + strings.Repeat("x", MaxChallengeHeaderBytes-len(head)-1) + `"`
		require.Len(t, at, MaxChallengeHeaderBytes)
		cs, err := ParseChallengeValues(at)
		require.NoError(t, err)
		chRequire(t, []chWant{{scheme: "Bearer", params: []string{"realm", at[len(head) : len(at)-1]}}}, cs)

		cs, err = ParseChallengeValues(at + " ")
		requireLimit(t, err, "MaxChallengeHeaderBytes", MaxChallengeHeaderBytes)
		assert.Nil(t, cs, "nothing is parsed past the size limit")

		// The limit is on all field lines together.
		half := MaxChallengeHeaderBytes / 2
		basic := "Basic " + strings.Repeat("a", half-6)
		cs, err = ParseChallengeValues(basic, strings.Repeat(" ", half))
		require.NoError(t, err)
		chRequire(t, []chWant{{scheme: "Basic", token68: basic[6:]}}, cs)
		cs, err = ParseChallengeValues(basic, strings.Repeat(" ", half+1))
		requireLimit(t, err, "MaxChallengeHeaderBytes", MaxChallengeHeaderBytes)
		assert.Nil(t, cs)
	})
	t.Run("MaxChallenges", func(t *testing.T) {
		at := strings.Repeat("A, ", MaxChallenges-1) + "A"
		cs, err := ParseChallengeValues(at)
		require.NoError(t, err)
		assert.Len(t, cs, MaxChallenges)

		cs, err = ParseChallengeValues(at + ", B")
		requireLimit(t, err, "MaxChallenges", MaxChallenges)
		assert.Len(t, cs, MaxChallenges, "what was read is returned")

		// A scheme-less malformed element counts as a challenge too.
		_, err = ParseChallengeValues(`x="y", ` + at)
		requireLimit(t, err, "MaxChallenges", MaxChallenges)
	})
	t.Run("MaxChallengeParams", func(t *testing.T) {
		var b strings.Builder
		b.WriteString("Bearer p0=v")
		for i := 1; i < MaxChallengeParams; i++ {
			b.WriteString(", p")
			b.WriteString(strings.Repeat("x", i))
			b.WriteString("=v")
		}
		at := b.String()
		cs, err := ParseChallengeValues(at)
		require.NoError(t, err)
		require.Len(t, cs, 1)
		assert.Len(t, cs[0].Params, MaxChallengeParams)

		// The limit is per challenge.
		cs, err = ParseChallengeValues(at, strings.Replace(at, "Bearer", "DPoP", 1))
		require.NoError(t, err)
		require.Len(t, cs, 2)
		assert.Len(t, cs[1].Params, MaxChallengeParams)

		cs, err = ParseChallengeValues(at + ", one_more=v")
		requireLimit(t, err, "MaxChallengeParams", MaxChallengeParams)
		require.Len(t, cs, 1)
		assert.Len(t, cs[0].Params, MaxChallengeParams)
	})
	t.Run("MaxEmptyListElements", func(t *testing.T) {
		// "Bearer" and n commas make n empty elements: one after each.
		cs, err := ParseChallengeValues("Bearer" + strings.Repeat(",", MaxEmptyListElements))
		require.NoError(t, err)
		chRequire(t, []chWant{{scheme: "Bearer"}}, cs)
		_, err = ParseChallengeValues("Bearer" + strings.Repeat(",", MaxEmptyListElements+1))
		requireLimit(t, err, "MaxEmptyListElements", MaxEmptyListElements)

		// An empty field line is an empty element too.
		lines := make([]string, MaxEmptyListElements)
		_, err = ParseChallengeValues(append(lines, "Bearer")...)
		require.NoError(t, err)
		_, err = ParseChallengeValues(append(lines, "", "Bearer")...)
		requireLimit(t, err, "MaxEmptyListElements", MaxEmptyListElements)

		// RFC 9110 §5.6.1.2: 10 000 commas are rejected.
		_, err = ParseChallengeValues(strings.Repeat(",", 10000))
		requireLimit(t, err, "MaxEmptyListElements", MaxEmptyListElements)
	})
}

// Every malformed challenge is reported as such and never hides a
// well-formed challenge before or after it in the same header.
func TestParseChallengesMalformed(t *testing.T) {
	for _, tc := range []struct {
		name string
		bad  string
	}{
		{"duplicate", `Bearer scope="a", scope="b"`},                        // RFC 9110 §11.2
		{"duplicate/case-folded", `Bearer SCOPE="a", Scope=b`},              // RFC 9110 §11.2
		{"duplicate/realm", `Bearer realm="a", error=e, realm="a"`},         // RFC 6750 §3
		{"unterminated", `Bearer realm="x`},                                 // §5.6.4
		{"unterminated/escaped-quote", `Bearer realm="x\"`},                 // §5.6.4
		{"unterminated/backslash-at-end", `Bearer realm="x\`},               // §5.6.4
		{"trailing-garbage", `Bearer realm="x" junk`},                       //
		{"trailing-garbage/after-token", `Bearer realm=x"y"`},               //
		{"trailing-garbage/after-token68", `Negotiate abc== def`},           //
		{"NUL", "Bearer realm=\"a\x00b\""},                                  //
		{"DEL", "Bearer realm=\"a\x7fb\""},                                  //
		{"CR", "Bearer realm=\"a\rb\""},                                     //
		{"LF", "Bearer realm=\"a\nb\""},                                     //
		{"CTL/long-value", "Bearer realm=\"0123456789\x1f0123456789\""},     //
		{"CTL/in-quoted-pair", "Bearer realm=\"a\\\x00b\""},                 // §5.6.4
		{"CTL/in-token-value", "Bearer realm=a\x01b"},                       //
		{"param-after-token68", `Negotiate abc, realm="x"`},                 // RFC 9110 §16.4.2
		{"missing-value", `Bearer error="x", realm=`},                       // §11.2
		{"missing-value/before-comma", `Bearer error="x", realm= `},         // §11.2
		{"missing-equals", `Bearer realm"x"`},                               // §11.2
		{"single-quotes", `Bearer scope='a b'`},                             //
		{"unquoted-url", `Bearer resource_metadata=https://rs.example/prm`}, //
		{"HTAB-after-scheme", "Bearer\trealm=\"x\""},                        // §11.3: 1*SP
		{"not-a-token", `Bearer realm="x", "y"`},                            // §11.2
	} {
		t.Run(tc.name, func(t *testing.T) {
			chRequire(t, []chWant{{scheme: strings.Fields(tc.bad)[0], bad: true}}, chParse(t, tc.bad))
			// The sound challenge's value is a token: a DQUOTE after
			// an unterminated one would close it, rightly.
			dpop := chWant{scheme: "DPoP", params: []string{"algs", "ES256"}}
			bad := chWant{scheme: strings.Fields(tc.bad)[0], bad: true}
			chRequire(t, []chWant{bad, dpop}, chParse(t, tc.bad+`, DPoP algs=ES256`))
			chRequire(t, []chWant{dpop, bad}, chParse(t, `DPoP algs="ES256", `+tc.bad))
			chRequire(t, []chWant{bad, dpop}, chParse(t, tc.bad, `DPoP algs="ES256"`))
		})
	}
	t.Run("param-before-scheme", func(t *testing.T) {
		chRequire(t, []chWant{
			{scheme: "", bad: true},
			{scheme: "DPoP", params: []string{"algs", "ES256"}},
		}, chParse(t, `realm="x", DPoP algs="ES256"`))
	})
	t.Run("stray-quote-is-skipped", func(t *testing.T) {
		// The quote has no partner on the line: it is a stray, and the
		// comma after it still ends the element.
		chRequire(t, []chWant{
			{scheme: "Bearer", bad: true},
			{scheme: "DPoP", params: []string{"algs", "ES256"}},
		}, chParse(t, `Bearer realm="x, DPoP algs=ES256`))
	})
	t.Run("control-character-keeps-string-extent", func(t *testing.T) {
		// The closing quote of a malformed string must not open a string
		// that swallows the next challenge.
		chRequire(t, []chWant{
			{scheme: "Bearer", bad: true},
			{scheme: "DPoP", params: []string{"algs", "ES256"}},
			{scheme: "Basic", params: []string{"realm", "r"}},
		}, chParse(t, "Bearer realm=\"a\x01b\", DPoP algs=\"ES256\", Basic realm=\"r\""))
	})
	t.Run("OAuth", func(t *testing.T) {
		// A malformed challenge is never acted on.
		cs := chParse(t, `Bearer error="insufficient_scope", scope="a" junk`)
		_, err := cs[0].OAuth()
		var se *SyntaxError
		assert.ErrorAs(t, err, &se)
		assert.ErrorIs(t, err, ErrMalformedChallenge)
	})
}

// Hostile headers are parsed in time linear in their size: recovery from a
// malformed element never rescans the line.
func TestParseChallengesLinear(t *testing.T) {
	const n = MaxChallengeHeaderBytes - 64
	fastest := func(s string) time.Duration {
		best := time.Duration(1 << 62)
		for range 5 {
			start := time.Now()
			_, _ = ParseChallengeValues(s)
			best = min(best, time.Since(start))
		}
		return best
	}
	// A well-formed header of the same size that takes the byte-by-byte
	// path, for scale.
	base := fastest(`Bearer realm="` + strings.Repeat(`a\"`, n/3) + `"`)
	for name, s := range map[string]string{
		"escaped-quotes":    "B " + strings.Repeat(`a=\",`, n/5),
		"unterminated":      `B a="` + strings.Repeat(`\"`, n/2),
		"stray-quotes":      "B " + strings.Repeat(`"a,`, n/3),
		"quote-after-ctl":   "B " + strings.Repeat("a=\"\x01\",", n/6),
		"garbage-elements":  "B a=b" + strings.Repeat(` c"d,`, n/5),
		"unterminated-each": strings.Repeat(`a="\,`, n/5),
	} {
		// A quadratic parse takes thousands of times as long.
		assert.Less(t, fastest(s), 50*base+time.Millisecond, name)
	}
}

func TestChallengeOAuth(t *testing.T) {
	t.Run("fields", func(t *testing.T) {
		o, err := chOAuth(t, `DPoP realm="r", error="invalid_token", error_description="d", error_uri="https://e/x", scope="b a", resource_metadata="https://rs/prm", acr_values="urn:b urn:a", max_age=30, algs="ES256 PS256", foo=bar`)
		require.NoError(t, err)
		assert.Equal(t, OAuthChallenge{
			Scheme:           "DPoP",
			Error:            ErrorInvalidToken,
			ErrorDescription: "d",
			ErrorURI:         "https://e/x",
			Realm:            "r",
			Scope:            Scopes{"b", "a"},
			ResourceMetadata: "https://rs/prm",
			ACRValues:        []string{"urn:b", "urn:a"},
			MaxAge:           30,
			Algs:             []string{"ES256", "PS256"},
		}, o)
	})
	t.Run("not OAuth", func(t *testing.T) {
		for _, h := range []string{`Basic realm="x"`, `Negotiate abc`, `Newauth realm="x"`, `Bearerx realm="x"`} {
			_, err := chOAuth(t, h)
			assert.ErrorIs(t, err, ErrNotOAuth, h)
		}
		_, err := chOAuth(t, `dpop algs=ES256`)
		assert.NoError(t, err, "R-9110-1: schemes are case-insensitive")
	})
	t.Run("error_description tolerates any byte", func(t *testing.T) {
		// RFC 6750 §3: display-only, so out-of-set bytes are kept.
		o, err := chOAuth(t, "Bearer error=\"invalid_token\", error_description=\"caf\xc3\xa9 \\\"q\\\" \\\\\"")
		require.NoError(t, err)
		assert.Equal(t, "caf\xc3\xa9 \"q\" \\", o.ErrorDescription)
	})
	t.Run("error out of set", func(t *testing.T) {
		for _, h := range []string{"Bearer error=\"caf\xc3\xa9\"", `Bearer error="a\"b"`, `Bearer error="a\\b"`} {
			_, err := chOAuth(t, h)
			var pe *ParamError
			require.ErrorAs(t, err, &pe, h)
			assert.Equal(t, "error", pe.Param)
			assert.ErrorIs(t, err, ErrMalformedChallenge)
			assert.Contains(t, err.Error(), "error")
		}
	})
	t.Run("scope is a set", func(t *testing.T) {
		// RFC 6750 §3: order-insensitive, case-sensitive.
		ab, err := chOAuth(t, `Bearer scope="a b"`)
		require.NoError(t, err)
		ba, err := chOAuth(t, `Bearer scope="b a"`)
		require.NoError(t, err)
		assert.True(t, ab.Scope.Equal(ba.Scope))
		cased, err := chOAuth(t, `Bearer scope="Read read"`)
		require.NoError(t, err)
		assert.Equal(t, Scopes{"Read", "read"}, cased.Scope)
		spaced, err := chOAuth(t, `Bearer scope="  a   b a "`)
		require.NoError(t, err)
		assert.Equal(t, Scopes{"a", "b"}, spaced.Scope)
		token, err := chOAuth(t, `Bearer scope=files.read`)
		require.NoError(t, err)
		assert.Equal(t, Scopes{"files.read"}, token.Scope)
	})
	t.Run("scope out of set", func(t *testing.T) {
		// RFC 6750 §3: a scope with a byte outside %x21 / %x23-5B / %x5D-7E
		// is never acted on.
		for _, h := range []string{"Bearer scope=\"a caf\xc3\xa9\"", `Bearer scope="a\"b"`, `Bearer scope="a\\b"`, "Bearer scope=\"a\tb\""} {
			o, err := chOAuth(t, h)
			var pe *ParamError
			require.ErrorAs(t, err, &pe, h)
			assert.Equal(t, "scope", pe.Param)
			assert.ErrorIs(t, err, ErrMalformedChallenge)
			assert.Nil(t, o.Scope)
		}
		// DEL is a control character: already a syntax error in a header.
		_, err := chOAuth(t, "Bearer scope=\"a\x7fb\"")
		var se *SyntaxError
		require.ErrorAs(t, err, &se)
		// The view checks it all the same for challenges built by hand.
		for _, v := range []string{"a\x7fb", "a\x00", "\x80"} {
			c := Challenge{Scheme: "Bearer", Params: []Param{{"scope", v}}}
			_, err := c.OAuth()
			var pe *ParamError
			require.ErrorAs(t, err, &pe, "%q", v)
			assert.ErrorIs(t, err, ErrMalformedChallenge)
		}
	})
	t.Run("max_age", func(t *testing.T) {
		// RFC 9470 §3: a non-negative integer, token or quoted (RFC 9110 §11.2);
		// anything else is dropped.
		for _, tc := range []struct {
			value string
			want  int
		}{
			{`5`, 5},
			{`"5"`, 5},
			{`0`, 0},
			{`"0"`, 0},
			{`007`, 7},
			{`2147483647`, 2147483647},
			{`2147483648`, NoMaxAge},
			{`99999999999999999999999`, NoMaxAge},
			{`-1`, NoMaxAge},
			{`"-1"`, NoMaxAge},
			{`+5`, NoMaxAge},
			{`5s`, NoMaxAge},
			{`"5 "`, NoMaxAge},
			{`" 5"`, NoMaxAge},
			{`""`, NoMaxAge},
			{`1e3`, NoMaxAge},
		} {
			o, err := chOAuth(t, "Bearer max_age="+tc.value)
			require.NoError(t, err, tc.value)
			assert.Equal(t, tc.want, o.MaxAge, tc.value)
		}
	})
	t.Run("claims", func(t *testing.T) {
		const want = `{"access_token":{"acrs":{"essential":true,"value":"cp1"}}}`
		for _, enc := range []string{
			"eyJhY2Nlc3NfdG9rZW4iOnsiYWNycyI6eyJlc3NlbnRpYWwiOnRydWUsInZhbHVlIjoiY3AxIn19fQ==", // padded, as Entra sends
			"eyJhY2Nlc3NfdG9rZW4iOnsiYWNycyI6eyJlc3NlbnRpYWwiOnRydWUsInZhbHVlIjoiY3AxIn19fQ",   // unpadded
		} {
			o, err := chOAuth(t, `Bearer error="insufficient_claims", claims="`+enc+`"`)
			require.NoError(t, err)
			assert.Equal(t, want, string(o.Claims))
		}
		// URL alphabet: {"a":"??>"} encodes with '_' and '-'.
		o, err := chOAuth(t, `Bearer claims="eyJhIjoiPz8-In0"`)
		require.NoError(t, err)
		assert.JSONEq(t, `{"a":"??>"}`, string(o.Claims))

		for _, tc := range []struct{ value, reason string }{
			{`"!!!!"`, "not base64"},
			{`"eyJh"`, "not JSON"},            // `{"a`
			{`"bm90IGpzb24="`, "not JSON"},    // `not json`
			{`""`, "not JSON"},                // empty
			{`"eyJhIjoxfQ==x"`, "not base64"}, // trailing byte
		} {
			_, err := chOAuth(t, `Bearer claims=`+tc.value)
			var pe *ParamError
			require.ErrorAs(t, err, &pe, tc.value)
			assert.Equal(t, "claims", pe.Param)
			assert.Contains(t, pe.Reason, tc.reason, tc.value)
			assert.ErrorIs(t, err, ErrMalformedChallenge)
		}
	})
	t.Run("acr_values and algs keep order", func(t *testing.T) {
		o, err := chOAuth(t, `Bearer acr_values="urn:c urn:a  urn:b", algs="PS256 ES256"`)
		require.NoError(t, err)
		assert.Equal(t, []string{"urn:c", "urn:a", "urn:b"}, o.ACRValues)
		assert.Equal(t, []string{"PS256", "ES256"}, o.Algs)
	})
	t.Run("unknown params ignored", func(t *testing.T) {
		// RFC 9110 §16.4.2, RFC 9449 §7.1: must-ignore, whatever their value.
		o, err := chOAuth(t, "Bearer foo=\"caf\xc3\xa9\", error=invalid_token, x_y=\"\\\"\"")
		require.NoError(t, err)
		assert.Equal(t, OAuthChallenge{Scheme: "Bearer", Error: ErrorInvalidToken, MaxAge: NoMaxAge}, o)
	})
	t.Run("names fold", func(t *testing.T) {
		o, err := chOAuth(t, `Bearer SCOPE="a", Max_Age=3, ERROR=insufficient_scope`)
		require.NoError(t, err)
		assert.Equal(t, Scopes{"a"}, o.Scope)
		assert.Equal(t, 3, o.MaxAge)
		assert.Equal(t, ErrorInsufficientScope, o.Error, "values are kept exactly")
		o, err = chOAuth(t, `Bearer error=INSUFFICIENT_SCOPE`)
		require.NoError(t, err)
		assert.Equal(t, "INSUFFICIENT_SCOPE", o.Error)
	})
}

func TestChallengeErrors(t *testing.T) {
	var err error = &SyntaxError{Line: 2, Offset: 7, Reason: "duplicate parameter scope"}
	assert.Equal(t, "stepup: malformed challenge: duplicate parameter scope (line 2, offset 7)", err.Error())
	assert.ErrorIs(t, err, ErrMalformedChallenge)
	assert.NotErrorIs(t, err, ErrChallengeLimit)

	err = &LimitError{Limit: "MaxChallenges", Max: 32}
	assert.Equal(t, "stepup: challenge header over limit MaxChallenges (32)", err.Error())
	assert.ErrorIs(t, err, ErrChallengeLimit)

	err = &ParamError{Param: "scope", Reason: "bad"}
	assert.Equal(t, "stepup: invalid scope parameter: bad", err.Error())
	assert.ErrorIs(t, err, ErrMalformedChallenge)
	assert.False(t, errors.Is(err, ErrNotOAuth))
}

// Values without quoted-pairs share the header's memory, and a usual header
// costs a single allocation.
func TestParseChallengesMemory(t *testing.T) {
	header := `Bearer realm="example", error=invalid_token, error_description="The access token expired"`
	cs := chParse(t, header)
	require.Len(t, cs, 1)
	base := uintptr(unsafe.Pointer(unsafe.StringData(header)))
	within := func(s string) bool {
		p := uintptr(unsafe.Pointer(unsafe.StringData(s)))
		return p >= base && p+uintptr(len(s)) <= base+uintptr(len(header))
	}
	assert.True(t, within(cs[0].Scheme))
	for _, p := range cs[0].Params {
		assert.True(t, within(p.Name), p.Name)
		assert.True(t, within(p.Value), p.Value)
	}

	for name, h := range map[string]string{"seed403": benchSeed403, "expired401": benchExpired401} {
		allocs := testing.AllocsPerRun(100, func() { _, _ = ParseChallengeValues(h) })
		assert.Equal(t, 1.0, allocs, name)
	}

	// Params sealed per challenge: appending to one never writes into the
	// next one's.
	cs = chParse(t, `A a=1, B b=2`)
	require.Len(t, cs, 2)
	_ = append(cs[0].Params, Param{"x", "y"})
	assert.Equal(t, []Param{{"b", "2"}}, cs[1].Params)
}

// byteClass must agree with the ABNF of RFC 9110 §5.6.2, §5.6.4 and §11.2.
func TestByteClass(t *testing.T) {
	isAlnum := func(c int) bool { return '0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' }
	require.Len(t, byteClass, 256)
	for c := 0; c < 256; c++ {
		wantTchar := isAlnum(c) || strings.ContainsRune("!#$%&'*+-.^_`|~", rune(c))
		wantToken68 := isAlnum(c) || strings.ContainsRune("-._~+/", rune(c))
		wantQdtext := c == '\t' || c == ' ' || c == 0x21 || 0x23 <= c && c <= 0x5b || 0x5d <= c && c <= 0x7e || c >= 0x80
		assert.Equal(t, wantTchar, byteClass[c]&tchar != 0, "tchar %#x", c)
		assert.Equal(t, wantToken68, byteClass[c]&token68 != 0, "token68 %#x", c)
		assert.Equal(t, wantQdtext, byteClass[c]&qdtext != 0, "qdtext %#x", c)
		wantCTL := c < 0x20 && c != '\t' || c == 0x7f
		assert.Equal(t, wantCTL, isCTL(byte(c)), "CTL %#x", c)
	}
}

// isPlainQdtext, which tests words, must agree with a byte-by-byte test
// wherever the odd byte stands.
func TestIsPlainQdtext(t *testing.T) {
	plain := func(v string) bool {
		for i := 0; i < len(v); i++ {
			if byteClass[v[i]]&qdtext == 0 || v[i] == '\t' || v[i] == '"' {
				return false
			}
		}
		return true
	}
	buf := []byte(strings.Repeat("a", 24))
	for n := 0; n <= len(buf); n++ {
		for pos := 0; pos < n; pos++ {
			for c := 0; c < 256; c++ {
				if c == '"' {
					continue // never passed: the caller cut v at the first DQUOTE
				}
				buf[pos] = byte(c)
				v := string(buf[:n])
				if plain(v) != isPlainQdtext(v) {
					t.Fatalf("isPlainQdtext(%q) = %v", v, !plain(v))
				}
			}
			buf[pos] = 'a'
		}
	}
}

// fuzzSeeds returns the header lines of the vectors and of the tests above.
func fuzzSeeds() [][2]string {
	return [][2]string{
		{`Bearer`, ``},
		{`Bearer realm="example", error="invalid_token", error_description="The access token expired"`, ``},
		{`Bearer error="insufficient_scope", scope="files:read files:write", resource_metadata="https://mcp.example.com/.well-known/oauth-protected-resource", error_description="Additional file write permission required"`, ``},
		{`Bearer resource_metadata="https://mcp.example.com/.well-known/oauth-protected-resource",                          scope="files:read"`, ``},
		{`BEARER ERROR="insufficient_scope", SCOPE="a"`, ``},
		{`Bearer error = "invalid_token" , realm= "x"`, ``},
		{`Bearer error_description="say \"hi\" \\ bye", error="invalid_token"`, ``},
		{`DPoP algs="ES256 PS256", Bearer realm="mcp", error="invalid_token"`, ``},
		{`Basic realm="x"`, `Bearer error="insufficient_scope", scope="a"`},
		{`, ,Bearer , error="invalid_token" ,, realm="x",`, ``},
		{`Newauth realm="apps", type=1, title="Login to \"apps\"", Bearer realm="simple"`, ``},
		{`Bearer scope="a", scope="b", error="insufficient_scope"`, ``},
		{`Bearer Scope="a", scope="b"`, ``},
		{`Negotiate YIIBhwYGKwYBBQUCoII=, Bearer realm="x"`, ``},
		{`Bearer abc123`, ``},
		{`Bearer error="insufficient_scope, scope="a"`, ``},
		{`Bearer scope='a b'`, ``},
		{`Bearer resource_metadata=https://rs.example/.well-known/oauth-protected-resource`, ``},
		{`Bearer scope=files:write, error=insufficient_scope`, ``},
		{`Bearer error="insufficient_user_authentication", error_description="A different authentication level is required", acr_values="myACR"`, ``},
		{`Bearer error="insufficient_user_authentication", max_age=5`, `Bearer max_age="-1", DPoP max_age="5s"`},
		{`Bearer error="insufficient_user_authentication", acr_values="urn:a urn:b", max_age="0", scope="payments"`, ``},
		{`DPoP error="use_dpop_nonce", error_description="Resource server requires nonce in DPoP proof"`, ``},
		{`Bearer realm="", authorization_uri="https://login.microsoftonline.com/common/oauth2/authorize", error="insufficient_claims", claims="eyJhY2Nlc3NfdG9rZW4iOnsiYWNycyI6eyJlc3NlbnRpYWwiOnRydWUsInZhbHVlIjoiY3AxIn19fQ=="`, ``},
		{`Bearer realm="x" junk`, `DPoP algs="ES256"`},
		{"Bearer error=\"invalid_token\x00\"", ``},
		{``, ``},
		{`,`, `,`},
		{`Bearer error="insufficient_scope", scope=""`, ``},
		{`Bearer resource_metadata="https://evil.example/.well-known/oauth-protected-resource"`, ``},
		{`Bearer realm="a"`, `error="invalid_token"`},
		{"Bearer realm=\"a\x01b\", DPoP algs=\"ES256\"", ``},
		{"Bearer realm=\"0123456789\t\\\xff\\\"0123456789\"", `x="\`},
		{`Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==, realm=x`, `Bearer realm="x, DPoP algs=ES256`},
		{"B " + strings.Repeat(`a=\",`, 40), ``},
		{benchSeed403, benchDPoPBearer},
	}
}

// FuzzParseChallenges checks the parser on any one or two field lines.
func FuzzParseChallenges(f *testing.F) {
	for _, s := range fuzzSeeds() {
		f.Add(s[0], s[1])
	}
	pad := strings.Repeat(" ", MaxChallengeHeaderBytes+1)
	f.Fuzz(func(t *testing.T, a, b string) {
		for _, lines := range [][]string{{a}, {a, b}} {
			inputLen := 0
			for _, l := range lines {
				inputLen += len(l)
			}
			cs, err := ParseChallengeValues(lines...)
			if err != nil {
				var le *LimitError
				require.ErrorAs(t, err, &le)
			}
			// Bounded output, and no string longer than the input:
			// values are slices of it or shorter unescaped copies.
			require.LessOrEqual(t, len(cs), MaxChallenges)
			for _, c := range cs {
				require.LessOrEqual(t, len(c.Params), MaxChallengeParams)
				require.LessOrEqual(t, len(c.Scheme), inputLen)
				require.LessOrEqual(t, len(c.Token68), inputLen)
				for _, p := range c.Params {
					require.LessOrEqual(t, len(p.Name), inputLen)
					require.LessOrEqual(t, len(p.Value), inputLen)
				}
				if c.Err != nil {
					require.ErrorIs(t, c.Err, ErrMalformedChallenge)
					continue
				}
				checkSoundChallenge(t, c)
			}
		}

		// RFC 9110 §5.3: field lines parse as the line that joins them, when
		// both are sound.
		split, err1 := ParseChallengeValues(a, b)
		joined, err2 := ParseChallengeValues(a + ", " + b)
		if err1 == nil && err2 == nil && allSound(split) && allSound(joined) {
			require.Equal(t, len(joined), len(split))
			for i := range split {
				require.Equal(t, joined[i].Scheme, split[i].Scheme)
				require.Equal(t, joined[i].Token68, split[i].Token68)
				require.Equal(t, joined[i].Params, split[i].Params)
			}
		}

		// Over the size limit nothing is parsed at all.
		over := []string{a, b}
		if n := MaxChallengeHeaderBytes + 1 - len(a) - len(b); n > 0 {
			over = append(over, pad[:n])
		}
		cs, err := ParseChallengeValues(over...)
		require.Nil(t, cs)
		var le *LimitError
		require.ErrorAs(t, err, &le)
		require.Equal(t, "MaxChallengeHeaderBytes", le.Limit)
	})
}

func allSound(cs []Challenge) bool {
	for _, c := range cs {
		if c.Err != nil {
			return false
		}
	}
	return true
}

// checkSoundChallenge checks what a challenge without Err guarantees, and
// that it survives String and a second parse unchanged.
func checkSoundChallenge(t *testing.T, c Challenge) {
	t.Helper()
	require.True(t, isToken(c.Scheme), "scheme %q", c.Scheme)
	if c.Token68 != "" {
		require.Empty(t, c.Params)
	}
	for i, p := range c.Params {
		require.True(t, isToken(p.Name), "name %q", p.Name)
		for j := 0; j < len(p.Value); j++ {
			require.False(t, isCTL(p.Value[j]), "value %q", p.Value)
		}
		for _, q := range c.Params[:i] {
			require.False(t, strings.EqualFold(p.Name, q.Name), "duplicate %q", p.Name)
		}
	}
	s := c.String()
	if len(s) > MaxChallengeHeaderBytes {
		return // ", " between params can make it longer than its input
	}
	back, err := ParseChallengeValues(s)
	require.NoError(t, err, "%q", s)
	require.Len(t, back, 1, "%q", s)
	require.NoError(t, back[0].Err, "%q", s)
	require.Equal(t, c.Scheme, back[0].Scheme, "%q", s)
	require.Equal(t, c.Token68, back[0].Token68, "%q", s)
	require.Equal(t, c.Params, back[0].Params, "%q", s)
}

// FuzzOAuthChallenge checks the Bearer/DPoP view on parsed headers, and on
// single parameters of any bytes, which a header could not carry.
func FuzzOAuthChallenge(f *testing.F) {
	for _, s := range fuzzSeeds() {
		f.Add(s[0]+", "+s[1], s[0])
	}
	f.Add(`DPoP scope="a b", max_age=7`, "eyJhIjoxfQ==")
	f.Add(`Bearer claims="e30="`, "-1")
	f.Fuzz(func(t *testing.T, header, raw string) {
		cs, _ := ParseChallengeValues(header)
		for _, c := range cs {
			checkOAuthView(t, c)
		}
		for _, name := range []string{"scope", "max_age", "claims", "error", "acr_values", "algs", "error_description", "realm"} {
			checkOAuthView(t, Challenge{Scheme: SchemeDPoP, Params: []Param{{name, raw}}})
		}
	})
}

func checkOAuthView(t *testing.T, c Challenge) {
	t.Helper()
	o, err := c.OAuth()
	if err != nil {
		var pe *ParamError
		switch {
		case errors.Is(err, ErrNotOAuth):
			require.False(t, c.IsScheme(SchemeBearer) || c.IsScheme(SchemeDPoP))
		case c.Err != nil:
			require.Equal(t, c.Err, err)
		default:
			require.ErrorAs(t, err, &pe)
			require.ErrorIs(t, err, ErrMalformedChallenge)
		}
		require.Zero(t, o)
		return
	}
	require.True(t, c.IsScheme(SchemeBearer) || c.IsScheme(SchemeDPoP))
	require.Equal(t, c.Scheme, o.Scheme)
	// RFC 6750 §3: only scope-tokens, each once.
	for i, s := range o.Scope {
		require.NotEmpty(t, s)
		for j := 0; j < len(s); j++ {
			ch := s[j]
			require.True(t, ch == 0x21 || 0x23 <= ch && ch <= 0x5b || 0x5d <= ch && ch <= 0x7e, "scope %q", s)
		}
		require.NotContains(t, o.Scope[:i], s)
	}
	for j := 0; j < len(o.Error); j++ {
		ch := o.Error[j]
		require.True(t, 0x20 <= ch && ch <= 0x21 || 0x23 <= ch && ch <= 0x5b || 0x5d <= ch && ch <= 0x7e, "error %q", o.Error)
	}
	require.GreaterOrEqual(t, o.MaxAge, NoMaxAge)
	if o.Claims != nil {
		require.True(t, json.Valid(o.Claims), "claims %q", o.Claims)
	}
	for _, v := range slices.Concat(o.ACRValues, o.Algs) {
		require.NotEmpty(t, v)
		require.False(t, strings.ContainsAny(v, " \t"), "%q", v)
	}
}

// FuzzParseScopes checks that a scope string parses to the set of its
// space-separated values, or fails for a byte outside the set.
func FuzzParseScopes(f *testing.F) {
	for _, s := range []string{"", "a", "a b", " a  b ", "b a a", "Read read", "files:read files:write", "a\x7fb", "caf\xc3\xa9", `a"b`, `a\b`, "a\tb"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := ParseScopes(s)
		var want []string
		bad := false
		for _, v := range strings.Split(s, " ") {
			for j := 0; j < len(v); j++ {
				if c := v[j]; c < 0x21 || c > 0x7e || c == '"' || c == '\\' {
					bad = true
				}
			}
			if v != "" && !slices.Contains(want, v) {
				want = append(want, v)
			}
		}
		if bad {
			var pe *ParamError
			require.ErrorAs(t, err, &pe)
			require.ErrorIs(t, err, ErrMalformedChallenge)
			require.Nil(t, got)
			return
		}
		require.NoError(t, err)
		require.Equal(t, len(want), len(got), "%q -> %q", s, got)
		require.True(t, got.Equal(want), "%q -> %q", s, got)
		// Order carries no meaning: the reversed string is the same set.
		rev := strings.Split(s, " ")
		slices.Reverse(rev)
		again, err := ParseScopes(strings.Join(rev, " "))
		require.NoError(t, err)
		require.True(t, got.Equal(again))
	})
}

// Headers the benchmarks parse: the MCP seed's 403, an expired-token 401, and
// a DPoP and a Bearer challenge on one line.
const (
	benchSeed403    = `Bearer error="insufficient_scope", scope="resource:tools:custom_scope", resource_metadata="https://example.com/.well-known/oauth-protected-resource/mcp", error_description="Tool 'custom-tool' requires additional scope"`
	benchExpired401 = `Bearer realm="example", error="invalid_token", error_description="The access token expired"`
	benchDPoPBearer = `DPoP algs="ES256 PS256", error="use_dpop_nonce", Bearer scope="a b", error="insufficient_scope"`
)

func BenchmarkParseChallenges(b *testing.B) {
	for _, bc := range []struct{ name, header string }{
		{"seed403", benchSeed403},
		{"expired401", benchExpired401},
		{"dpopBearer", benchDPoPBearer},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(bc.header)))
			for range b.N {
				if _, err := ParseChallengeValues(bc.header); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	b.Run("seed403Header", func(b *testing.B) {
		h := http.Header{"Www-Authenticate": {benchSeed403}}
		b.ReportAllocs()
		for range b.N {
			if _, err := ParseChallenges(h); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkParseChallengesHostile shows the parse of a hostile header of
// nearly MaxChallengeHeaderBytes staying linear.
func BenchmarkParseChallengesHostile(b *testing.B) {
	const n = MaxChallengeHeaderBytes - 64
	for _, bc := range []struct{ name, header string }{
		{"escapedQuotes", "B " + strings.Repeat(`a=\",`, n/5)},
		{"unterminated", `B a="` + strings.Repeat(`\"`, n/2)},
		{"plainValue", `Bearer realm="` + strings.Repeat("a", n) + `"`},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(bc.header)))
			for range b.N {
				_, _ = ParseChallengeValues(bc.header)
			}
		})
	}
}
