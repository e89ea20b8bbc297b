package stepup

import (
	"log/slog"
	"net/http"
	"strconv"
	"strings"
)

// action is what a challenge calls for: one remedy per row of the
// behaviour table in the package documentation. The zero value answers
// nothing, so a row that forgets to decide returns the response untouched.
type action int

const (
	// actNone: return the response as it is.
	actNone action = iota
	// actRefresh: the token was rejected. Replay with a newer token if
	// there is one, else refresh, else ask the Escalator to re-authorize.
	actRefresh
	// actEscalate: only a new authorization helps: ask the Escalator.
	actEscalate
	// actDPoPNonce: hand the nonce to the DPoP proof hook and replay.
	actDPoPNonce
)

func (a action) String() string {
	switch a {
	case actRefresh:
		return "refresh"
	case actEscalate:
		return "escalate"
	case actDPoPNonce:
		return "dpop nonce"
	}
	return "none"
}

// verdict is what the behaviour table says about a challenge.
type verdict struct {
	action action
	reason Reason
	// code is the error code acted on: the challenge's own, or, for a
	// challenge without one, the one its status and the request imply
	// (RFC 6750 §3.1). It is "" for a first authorization.
	code string
	// why says why nothing is done, when action is actNone.
	why string
}

// decide is the behaviour table: what a challenge oc with the given status
// calls for, given whether the request carried a token. Dispatch is on the
// error code; the status only tells a bare 401 from a bare 403, and a
// mismatch with the code is logged, not acted on (RFC 6750 §3.1 says
// "SHOULD" of the status codes). strict is
// [Transport.StrictInsufficientScope].
func decide(status int, oc *OAuthChallenge, tokenSent, strict bool) verdict {
	switch oc.Error {
	case "":
		switch {
		case status == http.StatusUnauthorized && !tokenSent:
			// RFC 6750 §3.1: no error code when the request had no
			// authentication information.
			return verdict{action: actEscalate, reason: ReasonAuthorizationRequired}
		case status == http.StatusUnauthorized:
			return verdict{action: actRefresh, reason: ReasonReauthorization, code: codeInvalidToken}
		case len(oc.Scope) > 0 && isScheme(oc.Scheme, schemeBearer) && !strict:
			// A 403 naming the scope needed, without error code: the MCP
			// go-sdk server's RequireBearerToken answers so.
			return verdict{action: actEscalate, reason: ReasonInsufficientScope, code: codeInsufficientScope}
		}
		return verdict{why: "403 challenge without error code"}
	case codeInvalidToken:
		if !tokenSent {
			return verdict{action: actEscalate, reason: ReasonAuthorizationRequired, code: codeInvalidToken}
		}
		return verdict{action: actRefresh, reason: ReasonReauthorization, code: codeInvalidToken}
	case codeInsufficientScope:
		// Never a refresh: it cannot widen scope (RFC 6749 §6).
		return verdict{action: actEscalate, reason: ReasonInsufficientScope, code: oc.Error}
	case codeInsufficientUserAuthentication:
		// Never a refresh: acr and auth_time survive it (RFC 9470 §6.1).
		return verdict{action: actEscalate, reason: ReasonUserAuthentication, code: oc.Error}
	case codeInsufficientClaims:
		if oc.Claims == nil {
			return verdict{why: "insufficient_claims without claims"}
		}
		return verdict{action: actEscalate, reason: ReasonClaims, code: oc.Error}
	case codeUseDPoPNonce:
		if !isScheme(oc.Scheme, schemeDPoP) {
			return verdict{why: "use_dpop_nonce outside a DPoP challenge"}
		}
		return verdict{action: actDPoPNonce, reason: ReasonDPoPNonce, code: oc.Error}
	}
	return verdict{why: "error code " + oc.Error + " is not answered"}
}

// conformant reports whether status is the one RFC 6750 §3.1, RFC 9470 §3
// and RFC 9449 §9 give for the error code acted on.
func (v verdict) conformant(status int) bool {
	if v.code == codeInsufficientScope {
		return status == http.StatusForbidden
	}
	return status == http.StatusUnauthorized
}

// challenge is a challenge the Transport answers.
type challenge struct {
	verdict
	oauth  OAuthChallenge
	status int
	nonce  string // for actDPoPNonce
	key    challengeKey
}

// classify picks the challenge of resp to answer and what it calls for. It
// returns the verdict alone, with its why, when nothing is to be done:
// malformed or ambiguous challenges are never acted on (RFC 9110 §11.2,
// RFC 6750 §3).
func (t *Transport) classify(resp *http.Response, s *snapshot, originKey string) (*challenge, verdict) {
	oc, why := pickOAuth(resp, s)
	if why != "" {
		return nil, verdict{why: why}
	}
	v := decide(resp.StatusCode, &oc, s.tok != nil, t.StrictInsufficientScope)
	c := &challenge{verdict: v, oauth: oc, status: resp.StatusCode}
	if v.action == actDPoPNonce {
		c.nonce, c.why = t.dpopNonce(resp, s)
		if c.why != "" {
			c.action = actNone
		}
	}
	if c.action == actNone {
		return nil, c.verdict
	}
	c.key = newChallengeKey(originKey, &c.oauth)
	return c, c.verdict
}

// pickOAuth returns the OAuth challenge of resp to answer, matching the
// scheme of the token s carried, or why there is none. A 401 without any
// challenge gives an empty OAuth view: it breaks RFC 9110 §11.6.1 but still
// says that authorization is needed.
func pickOAuth(resp *http.Response, s *snapshot) (OAuthChallenge, string) {
	if len(resp.Header["Www-Authenticate"]) == 0 {
		return OAuthChallenge{MaxAge: NoMaxAge}, ""
	}
	cs, err := ParseChallenges(resp.Header)
	if err != nil {
		return OAuthChallenge{}, err.Error()
	}
	scheme := schemeBearer
	if s.tok != nil {
		scheme = s.tok.Type()
	}
	ch, why := pick(cs, scheme)
	if why != "" {
		return OAuthChallenge{}, why
	}
	oc, err := ch.OAuth()
	if err != nil {
		return OAuthChallenge{}, "malformed challenge: " + err.Error()
	}
	return oc, ""
}

// pick returns the one challenge for scheme, or the one Bearer, else DPoP,
// challenge when there is none for scheme (RFC 9110 §11.4: the client picks
// a scheme it understands). A malformed or repeated challenge for the
// chosen scheme means the header cannot be trusted.
func pick(cs []Challenge, scheme string) (*Challenge, string) {
	chosen := scheme
	if !hasScheme(cs, scheme) {
		switch {
		case hasScheme(cs, schemeBearer):
			chosen = schemeBearer
		case hasScheme(cs, schemeDPoP):
			chosen = schemeDPoP
		default:
			return nil, "no Bearer or DPoP challenge"
		}
	}
	var found *Challenge
	for i := range cs {
		c := &cs[i]
		if !c.IsScheme(chosen) {
			continue
		}
		if c.Err != nil {
			// Among others a repeated parameter (RFC 9110 §11.2), which
			// the parser flags: a remedy chosen from one of two values
			// would be the attacker's pick.
			return nil, "malformed challenge: " + c.Err.Error()
		}
		if found != nil {
			return nil, "more than one " + chosen + " challenge"
		}
		found = c
	}
	return found, ""
}

func isScheme(s, scheme string) bool { return strings.EqualFold(s, scheme) }

func hasScheme(cs []Challenge, scheme string) bool {
	for i := range cs {
		if cs[i].IsScheme(scheme) {
			return true
		}
	}
	return false
}

// dpopNonce returns the nonce of a use_dpop_nonce challenge, or why it is
// not answered.
func (t *Transport) dpopNonce(resp *http.Response, s *snapshot) (string, string) {
	if t.DPoPNonce == nil && s.dpop == nil {
		return "", "use_dpop_nonce to a token not bound by WithDPoP, and no DPoPNonce hook"
	}
	vs := resp.Header.Values("DPoP-Nonce")
	if len(vs) != 1 {
		return "", "use_dpop_nonce needs exactly one DPoP-Nonce header (RFC 9449 §8)"
	}
	if !isNonce(vs[0]) {
		return "", "DPoP-Nonce is not 1*NQCHAR (RFC 9449 §8.1)"
	}
	return vs[0], ""
}

// isNonce: nonce = 1*NQCHAR, NQCHAR = %x21 / %x23-5B / %x5D-7E (RFC 9449 §8.1).
func isNonce(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isScopeChar(s[i]) {
			return false
		}
	}
	return true
}

// attrs describes c for events: what the header said, then what stepup
// concluded, under separate names.
func (c *challenge) attrs(url string) []slog.Attr {
	return []slog.Attr{
		slog.Int("status", c.status),
		slog.String("scheme", c.oauth.Scheme),
		slog.String("header_error", c.oauth.Error),
		slog.String("scope", c.oauth.Scope.String()),
		slog.String("url", url),
		slog.String("treated_as", c.code),
		slog.String("remedy", c.action.String()),
	}
}

// Reason is what a challenge asks for, as stepup concluded from its error
// code and status: why an [Escalator] is asked for a new authorization, or
// why a [*ChallengeError] could not cure the challenge.
type Reason int

// The reasons, one per remedy of the behaviour table in the package
// documentation.
const (
	// ReasonAuthorizationRequired: a 401 to a request that carried no
	// token (RFC 6750 §3.1).
	ReasonAuthorizationRequired Reason = iota + 1
	// ReasonReauthorization: the token was rejected (invalid_token, or a
	// 401 without error code after a token was sent, RFC 6750 §3.1). It
	// is refreshed when it can be; an Escalator sees this reason when it
	// cannot: no refresh token, or the grant is gone (invalid_grant).
	ReasonReauthorization
	// ReasonInsufficientScope: insufficient_scope (RFC 6750 §3.1): the
	// token needs more scope, which only a new authorization can grant.
	ReasonInsufficientScope
	// ReasonUserAuthentication: insufficient_user_authentication
	// (RFC 9470): the user must authenticate again, per ACRValues and
	// MaxAge.
	ReasonUserAuthentication
	// ReasonClaims: insufficient_claims: the token must carry the Claims
	// of the challenge.
	ReasonClaims
	// ReasonDPoPNonce: use_dpop_nonce (RFC 9449 §9): the DPoP proof must
	// carry the resource server's nonce. Never escalated.
	ReasonDPoPNonce
)

// String returns the reason in words, e.g. "insufficient scope".
func (r Reason) String() string {
	switch r {
	case ReasonAuthorizationRequired:
		return "authorization required"
	case ReasonReauthorization:
		return "re-authorization"
	case ReasonInsufficientScope:
		return "insufficient scope"
	case ReasonUserAuthentication:
		return "user authentication"
	case ReasonClaims:
		return "claims"
	case ReasonDPoPNonce:
		return "DPoP nonce"
	}
	return "Reason(" + strconv.Itoa(int(r)) + ")"
}
