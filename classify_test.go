package stepup

import (
	"encoding/base64"
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Every row of the behaviour table: what a challenge calls for, given its
// status and whether the request carried a token.
func TestDecide(t *testing.T) {
	claims := base64.StdEncoding.EncodeToString([]byte(`{"access_token":{"acrs":{"essential":true,"value":"cp1"}}}`))
	const (
		noToken = false
		token   = true
	)
	for _, tc := range []struct {
		name      string
		status    int
		header    string // "" for a 401 without WWW-Authenticate
		tokenSent bool
		strict    bool
		want      verdict
	}{
		// RFC 6750 §3.1: no error code when the request had no token.
		{"401 without challenge, no token", 401, "", noToken, false,
			verdict{action: actEscalate, reason: ReasonAuthorizationRequired}},
		{"401 bare Bearer, no token", 401, `Bearer resource_metadata="https://rs/.well-known/oauth-protected-resource", scope="a"`, noToken, false,
			verdict{action: actEscalate, reason: ReasonAuthorizationRequired}},
		{"401 invalid_token, no token", 401, `Bearer error="invalid_token"`, noToken, false,
			verdict{action: actEscalate, reason: ReasonAuthorizationRequired, code: ErrorInvalidToken}},
		// A bare 401 after a token was sent rejects that token.
		{"401 without challenge, token", 401, "", token, false,
			verdict{action: actRefresh, reason: ReasonReauthorization, code: ErrorInvalidToken}},
		{"401 bare Bearer, token", 401, `Bearer realm="x"`, token, false,
			verdict{action: actRefresh, reason: ReasonReauthorization, code: ErrorInvalidToken}},
		{"401 invalid_token, token", 401, `Bearer error="invalid_token"`, token, false,
			verdict{action: actRefresh, reason: ReasonReauthorization, code: ErrorInvalidToken}},
		// RFC 6749 §6: a refresh never widens scope.
		{"403 insufficient_scope", 403, `Bearer error="insufficient_scope", scope="b"`, token, false,
			verdict{action: actEscalate, reason: ReasonInsufficientScope, code: ErrorInsufficientScope}},
		{"401 insufficient_scope: the code decides", 401, `Bearer error="insufficient_scope", scope="b"`, token, false,
			verdict{action: actEscalate, reason: ReasonInsufficientScope, code: ErrorInsufficientScope}},
		{"403 scope without error (go-sdk server)", 403, `Bearer scope="b"`, token, false,
			verdict{action: actEscalate, reason: ReasonInsufficientScope, code: ErrorInsufficientScope}},
		{"403 scope without error, strict", 403, `Bearer scope="b"`, token, true,
			verdict{why: "403 challenge without error code"}},
		{"403 DPoP scope without error", 403, `DPoP scope="b"`, token, false,
			verdict{why: "403 challenge without error code"}},
		{"403 Bearer without error or scope", 403, `Bearer realm="x"`, token, false,
			verdict{why: "403 challenge without error code"}},
		// RFC 9470 §6.1: acr and auth_time survive a refresh.
		{"401 insufficient_user_authentication", 401, `Bearer error="insufficient_user_authentication", acr_values="a"`, token, false,
			verdict{action: actEscalate, reason: ReasonUserAuthentication, code: ErrorInsufficientUserAuthentication}},
		{"401 insufficient_claims", 401, `Bearer error="insufficient_claims", claims="` + claims + `"`, token, false,
			verdict{action: actEscalate, reason: ReasonClaims, code: ErrorInsufficientClaims}},
		{"401 insufficient_claims without claims", 401, `Bearer error="insufficient_claims"`, token, false,
			verdict{why: "insufficient_claims without claims"}},
		// RFC 9449 §9.
		{"401 DPoP use_dpop_nonce", 401, `DPoP error="use_dpop_nonce"`, token, false,
			verdict{action: actDPoPNonce, reason: ReasonDPoPNonce, code: ErrorUseDPoPNonce}},
		{"401 Bearer use_dpop_nonce", 401, `Bearer error="use_dpop_nonce"`, token, false,
			verdict{why: "use_dpop_nonce outside a DPoP challenge"}},
		// RFC 6750 §3.1: a malformed request is not retried.
		{"400 invalid_request", 400, `Bearer error="invalid_request"`, token, false,
			verdict{why: "error code invalid_request is not answered"}},
		{"401 unknown error code", 401, `Bearer error="invalid_dpop_proof"`, token, false,
			verdict{why: "error code invalid_dpop_proof is not answered"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			oc := OAuthChallenge{MaxAge: NoMaxAge}
			if tc.header != "" {
				oc = mustOAuth(t, tc.header)
			}
			got := decide(tc.status, &oc, tc.tokenSent, tc.strict)
			assert.Equal(t, tc.want, got)
			if got.action == actNone {
				assert.NotEmpty(t, got.why, "every row that does nothing says why")
			}
		})
	}
}

// classify reads every field line, picks the challenge for the scheme of
// the token sent, and never acts on a malformed or ambiguous one.
func TestClassify(t *testing.T) {
	var tr Transport
	bearer := &snapshot{}
	for _, tc := range []struct {
		name    string
		status  int
		headers []string
		want    action
		why     string
	}{
		{"second field line", 403, []string{`Basic realm="x"`, `Bearer error="insufficient_scope", scope="a"`}, actEscalate, ""},
		{"unknown scheme first", 403, []string{`Newauth realm="apps", type=1, Bearer error="insufficient_scope", scope="a"`}, actEscalate, ""},
		{"duplicate scope", 403, []string{`Bearer scope="a", scope="b", error="insufficient_scope"`}, actNone, "malformed challenge"},
		{"two Bearer challenges", 403, []string{`Bearer error="insufficient_scope", scope="a"`, `Bearer error="insufficient_scope", scope="b"`}, actNone, "more than one Bearer challenge"},
		{"no OAuth scheme", 401, []string{`Basic realm="x"`}, actNone, "no Bearer or DPoP challenge"},
		{"scope out of set", 403, []string{"Bearer error=\"insufficient_scope\", scope=\"a\x7fb\""}, actNone, "malformed challenge"},
		{"DPoP nonce without hook", 401, []string{`DPoP error="use_dpop_nonce"`}, actNone, "use_dpop_nonce to a token not bound by WithDPoP, and no DPoPNonce hook"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp := &http.Response{StatusCode: tc.status, Header: http.Header{"Www-Authenticate": tc.headers}}
			c, v := tr.classify(resp, bearer, "https://rs")
			if tc.want == actNone {
				require.Nil(t, c)
				assert.Contains(t, v.why, tc.why)
				return
			}
			require.NotNil(t, c)
			assert.Equal(t, tc.want, c.action)
			assert.Equal(t, "https://rs", c.key.origin)
		})
	}
}
