package stepup

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"time"

	"golang.org/x/oauth2"
)

// Defaults of the [Transport]'s limits.
const (
	// DefaultMaxReplays is how many times a request is replayed at most
	// after remedying its challenges.
	DefaultMaxReplays = 2
	// DefaultExhaustedTTL is how long a challenge that came straight back
	// after its escalation, or whose escalation was declined, is not
	// escalated again while the granted scopes stay the same.
	DefaultExhaustedTTL = 10 * time.Minute
)

// maxDrain is the longest challenge response body read before it is closed
// for a replay: enough to reuse the connection after a typical error body,
// never an unbounded read.
const maxDrain = 64 << 10

// DPoPNonceFunc receives the nonce a resource server demands in DPoP proofs
// (RFC 9449 §9) for req, which drew the use_dpop_nonce challenge. It
// typically stores the nonce where the code that signs DPoP proofs for
// req's origin finds it; the [Transport] then replays the request once. req
// is the caller's request: read it, never modify it. An error cancels the
// replay and the challenge response is returned as it is.
type DPoPNonceFunc func(req *http.Request, nonce string) error

// Transport is an [http.RoundTripper] that authorizes requests with the
// token of a [TokenSource] and answers the OAuth challenges
// (WWW-Authenticate, RFC 9110 §11) of the responses:
//
//   - 401 invalid_token (or 401 without error after a token was sent):
//     replay with a newer token if one exists, else refresh once,
//     single-flight; with no refresh token, or when the refresh fails, ask
//     the [Escalator] to re-authorize.
//   - 401 without a token sent: ask the Escalator for a first authorization.
//   - 403 insufficient_scope (by default also a 403 Bearer challenge with
//     scope and no error): never refresh, which cannot widen scope; ask the
//     Escalator for the scopes requested, granted and challenged.
//   - 401 insufficient_user_authentication (RFC 9470) and
//     insufficient_claims: ask the Escalator, with acr_values and max_age
//     or the decoded claims; never refresh.
//   - DPoP use_dpop_nonce: hand the nonce to DPoPNonce and replay once.
//
// Then it replays the request with the new token. Everything else, and any
// challenge that is malformed, over a parser limit, or on a response from
// another origin than the resource's, is returned untouched, its body
// unread. A guard bounds the work: each challenge is remedied at most once
// per request, a request is replayed at most MaxReplays times, and a
// challenge that came straight back after its escalation, or whose
// escalation was declined, is not escalated again for ExhaustedTTL unless
// the granted scopes change. Concurrent requests that draw the same
// challenge with the same token share one refresh or one Escalator call; no
// lock is held while a request is in flight.
//
// The token is attached only to requests for the origin (scheme, host and
// port) of the source's resource, so a redirect hop to another origin goes
// without it. Transport can also sit above an [oauth2.Transport] whose
// Source is the same TokenSource; that transport then attaches the token
// itself, to every origin.
//
// Transport deliberately handles authentication, which the
// [http.RoundTripper] contract leaves to higher layers, as
// [oauth2.Transport] does. It never modifies the caller's request and
// replays a body only through Request.GetBody (see BufferBody).
//
// The zero value is not usable: set Source. A Transport is safe for
// concurrent use and must not be copied after first use.
type Transport struct {
	// Base makes the requests. Nil means [http.DefaultTransport].
	Base http.RoundTripper

	// Source holds the token. It is required.
	Source *TokenSource

	// Escalator obtains new authorizations. When nil, challenges that need
	// one are returned untouched.
	Escalator Escalator

	// MaxReplays caps how often one request is replayed. Zero means
	// DefaultMaxReplays; a negative value turns replays off.
	MaxReplays int

	// ExhaustedTTL is how long an exhausted or declined challenge is not
	// escalated again. Zero means DefaultExhaustedTTL.
	ExhaustedTTL time.Duration

	// StrictInsufficientScope, when set, stops a 403 Bearer challenge that
	// carries scope but no error from counting as insufficient_scope. By
	// default it counts: the MCP go-sdk server answers that way.
	StrictInsufficientScope bool

	// BufferBody is how many bytes of a request body without GetBody the
	// Transport may buffer so that it can replay the request. Zero never
	// buffers: such a request's challenge is returned untouched, since its
	// body has been consumed. A body longer than BufferBody is streamed
	// and not replayed.
	BufferBody int64

	// AllowCrossOriginMetadata lets a resource_metadata URL of another
	// origin than the resource reach the Escalator. Link-local addresses,
	// and private or loopback ones for a public resource, are refused
	// anyway.
	AllowCrossOriginMetadata bool

	// DPoPNonce, when set, receives the nonce of a DPoP use_dpop_nonce
	// challenge before the request is replayed once. When nil, such
	// challenges are returned untouched.
	DPoPNonce DPoPNonceFunc

	// Logger receives events: challenges seen and ignored (and why),
	// refreshes, escalations, the guard stopping a remedy. Tokens are never
	// logged. Nil means silent.
	Logger *slog.Logger

	guard       guard
	escalations flightGroup[escalationKey]
}

// escalationKey identifies one escalation: a challenge drawn by one token.
type escalationKey struct {
	challenge challengeKey
	gen       uint64
}

var errNoSource = errors.New("stepup: Transport.Source is nil")

// RoundTrip sends req with the current token and answers the challenge of
// the response, if any, as described on [Transport]. It returns a response
// whenever one was obtained and no remedy failed; it returns an
// [*EscalationError] when the Escalator failed or was declined, and the
// context's error when req's context ended while waiting for a remedy.
//
// As any RoundTripper, it closes req.Body, even on errors; the caller closes
// the body of the returned response. The bodies of challenge responses it
// answers itself are closed before the replay, and read to their end first
// only when they declare a length of at most 64 KiB.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	ts := t.Source
	if ts == nil {
		closeBody(req.Body)
		return nil, errNoSource
	}
	if !ts.matchesOrigin(req.URL) {
		// Another origin, as on a redirect hop: no token goes there, and
		// its challenges are not ours to answer (R-MCP-18, D-9).
		resp, err := t.base().RoundTrip(req)
		if t.Logger != nil && err == nil && hasChallenge(resp) {
			t.event(req.Context(), slog.LevelInfo, "stepup: challenge ignored",
				slog.String("why", "response from another origin than the resource's"),
				slog.Int("status", resp.StatusCode), slog.String("url", redactedURL(req)))
		}
		return resp, err
	}
	rt := roundTrip{t: t, ts: ts, req: req}
	return rt.run()
}

// CloseIdleConnections closes the idle connections of Base, if it can.
func (t *Transport) CloseIdleConnections() {
	if c, ok := t.base().(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

func (t *Transport) base() http.RoundTripper {
	if t.Base != nil {
		return t.Base
	}
	return http.DefaultTransport
}

func (t *Transport) maxReplays() int {
	switch {
	case t.MaxReplays == 0:
		return DefaultMaxReplays
	case t.MaxReplays < 0:
		return 0
	}
	return t.MaxReplays
}

func (t *Transport) exhaustedTTL() time.Duration {
	if t.ExhaustedTTL <= 0 {
		return DefaultExhaustedTTL
	}
	return t.ExhaustedTTL
}

func (t *Transport) event(ctx context.Context, level slog.Level, msg string, attrs ...slog.Attr) {
	if t.Logger == nil || !t.Logger.Enabled(ctx, level) {
		return
	}
	t.Logger.LogAttrs(ctx, level, msg, attrs...)
}

// sent is the token a request went out with.
type sent struct {
	tok  *oauth2.Token // nil when none was attached
	gen  uint64
	auth []string // Authorization field value, nil when none; shared, read-only
}

// remedy is a challenge a request has remedied.
type remedy struct {
	key       challengeKey
	action    action // actRefresh: the sent token was renewed, by refresh or re-authorization
	escalated bool
}

// roundTrip is the state of one call of RoundTrip: what the per-request
// guard needs, and how to get the body again.
type roundTrip struct {
	t   *Transport
	ts  *TokenSource
	req *http.Request

	firstBody  io.ReadCloser                 // body of the first send
	replayable bool                          // the body can be sent again
	getBody    func() (io.ReadCloser, error) // nil: no body to send again
	ownGetBody bool                          // getBody is ours, not req.GetBody
	remedies   []remedy                      // challenges remedied so far
	replays    int                           // replays so far
	failedGen  uint64                        // generation whose refresh failed
}

func (rt *roundTrip) run() (*http.Response, error) {
	ctx := rt.req.Context()
	if err := rt.prepareBody(); err != nil {
		return nil, err
	}
	s, err := rt.sendable(ctx)
	if err != nil {
		closeBody(rt.firstBody)
		return nil, err
	}
	resp, err := rt.send(rt.firstBody, s)
	for err == nil && hasChallenge(resp) {
		body, replay, herr := rt.handle(ctx, resp, s)
		if herr != nil {
			return nil, herr
		}
		if !replay {
			return resp, nil
		}
		rt.replays++
		s = rt.current()
		resp, err = rt.send(body, s)
	}
	if err != nil {
		return nil, err
	}
	return resp, nil
}

// prepareBody works out whether the request body can be replayed, buffering
// it when BufferBody allows.
func (rt *roundTrip) prepareBody() error {
	req := rt.req
	rt.firstBody = req.Body
	switch {
	case req.Body == nil || req.Body == http.NoBody:
		rt.replayable = true
	case req.GetBody != nil:
		rt.replayable, rt.getBody = true, req.GetBody
	case rt.t.BufferBody > 0:
		buf, err := io.ReadAll(io.LimitReader(req.Body, rt.t.BufferBody+1))
		if err != nil {
			req.Body.Close()
			return fmt.Errorf("stepup: buffering request body: %w", err)
		}
		if int64(len(buf)) > rt.t.BufferBody {
			// Too long to keep: stream it, and never send it twice.
			rt.firstBody = &multiReadCloser{Reader: io.MultiReader(bytes.NewReader(buf), req.Body), Closer: req.Body}
			return nil
		}
		req.Body.Close()
		rt.replayable, rt.ownGetBody = true, true
		rt.getBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(buf)), nil }
		rt.firstBody, _ = rt.getBody()
	}
	return nil
}

type multiReadCloser struct {
	io.Reader
	io.Closer
}

// body returns a fresh body for a replay.
func (rt *roundTrip) body() (io.ReadCloser, error) {
	if rt.getBody == nil {
		return rt.req.Body, nil // nil or http.NoBody
	}
	return rt.getBody()
}

// sendable returns the token for the first send, refreshing an expired one
// first rather than after a 401. When that refresh fails the expired token
// goes out anyway and the resource's answer decides.
func (rt *roundTrip) sendable(ctx context.Context) (sent, error) {
	tok, gen, auth := rt.ts.current()
	if tok == nil || tok.RefreshToken == "" || !rt.ts.canRefresh() || tok.Valid() {
		return sent{tok, gen, auth}, nil
	}
	if _, err := rt.ts.refreshGen(ctx, gen); err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return sent{}, ctxErr
		}
		rt.failedGen = gen
		rt.t.event(ctx, slog.LevelWarn, "stepup: refresh failed",
			slog.String("when", "token expired before sending"), slog.String("error", err.Error()))
	} else {
		rt.t.event(ctx, slog.LevelInfo, "stepup: refreshed", slog.String("when", "token expired before sending"))
	}
	return rt.current(), nil
}

func (rt *roundTrip) current() sent {
	tok, gen, auth := rt.ts.current()
	return sent{tok, gen, auth}
}

// send sends body with the token of s on a copy of the request: the
// caller's request is never modified (R-GO-1).
func (rt *roundTrip) send(body io.ReadCloser, s sent) (*http.Response, error) {
	req := rt.req
	if s.auth == nil && body == req.Body && !rt.ownGetBody {
		return rt.t.base().RoundTrip(req)
	}
	r2 := new(http.Request)
	*r2 = *req
	r2.Body = body
	if rt.ownGetBody {
		r2.GetBody = rt.getBody
	}
	if s.auth != nil {
		// A new map, so the caller's never gains the token; its value
		// slices are shared, since no RoundTripper may modify a request.
		h := maps.Clone(req.Header)
		if h == nil {
			h = make(http.Header, 1)
		}
		h["Authorization"] = s.auth
		r2.Header = h
	}
	return rt.t.base().RoundTrip(r2)
}

// hasChallenge reports whether resp may carry a challenge to answer: a 403
// with WWW-Authenticate, or any 401 (one without the header breaks RFC 9110
// §11.6.1 but still says that authorization is needed). It is the only look
// the Transport takes at other responses.
func hasChallenge(resp *http.Response) bool {
	return resp.StatusCode == http.StatusUnauthorized ||
		resp.StatusCode == http.StatusForbidden && len(resp.Header["Www-Authenticate"]) > 0
}

// handle decides what to do about the challenge of resp, a response to a
// request sent with s, and does it. To replay, it returns the body to send
// and true, having closed resp; otherwise resp is untouched, unless handle
// returns an error, which it only does after closing resp.
func (rt *roundTrip) handle(ctx context.Context, resp *http.Response, s sent) (io.ReadCloser, bool, error) {
	t := rt.t
	c, why := t.classify(resp, s, rt.ts.originKey)
	if why != "" {
		t.event(ctx, slog.LevelInfo, "stepup: challenge ignored",
			slog.String("why", why), slog.Int("status", resp.StatusCode), slog.String("url", redactedURL(rt.req)))
		return nil, false, nil
	}
	if t.Logger != nil {
		attrs := c.attrs(rt.req)
		if !c.conformant() {
			attrs = append(attrs, slog.Bool("nonconformant_status", true)) // R-6750-11
		}
		t.event(ctx, slog.LevelDebug, "stepup: challenge", attrs...)
	}
	if r := rt.remedied(c.key); r != nil {
		if r.escalated {
			t.guard.spent(c.key, rt.ts.grantedKey(), time.Now())
		}
		rt.stop(ctx, c, "challenge came back after its remedy")
		return nil, false, nil
	}
	if c.action == actRefresh && rt.renewed() {
		// D-2: one renewal per request. A bare 401 and a 401 invalid_token
		// are different challenges, but both reject the token just
		// renewed: a second renewal would only refresh or prompt again.
		rt.stop(ctx, c, "token already renewed in this request")
		return nil, false, nil
	}
	if rt.replays >= t.maxReplays() {
		rt.stop(ctx, c, "replay limit reached")
		return nil, false, nil
	}
	if !rt.replayable {
		rt.stop(ctx, c, "request body cannot be replayed (no GetBody)")
		return nil, false, nil
	}
	switch c.action {
	case actDPoPNonce:
		return rt.useNonce(ctx, resp, c)
	case actRefresh:
		return rt.refresh(ctx, resp, c, s)
	}
	return rt.escalate(ctx, resp, c, s)
}

// release gets the body for the replay and then drains and closes resp, so
// that no connection is held while a remedy runs. When the body cannot be
// had it leaves resp untouched and returns false.
func (rt *roundTrip) release(ctx context.Context, resp *http.Response) (io.ReadCloser, bool) {
	body, err := rt.body()
	if err != nil {
		rt.t.event(ctx, slog.LevelWarn, "stepup: challenge ignored",
			slog.String("why", "GetBody failed: "+err.Error()), slog.String("url", redactedURL(rt.req)))
		return nil, false
	}
	drainClose(resp)
	return body, true
}

func (rt *roundTrip) remedied(key challengeKey) *remedy {
	for i := range rt.remedies {
		if rt.remedies[i].key == key {
			return &rt.remedies[i]
		}
	}
	return nil
}

// renewed reports whether the request has had its token renewed after a
// rejection (D-2).
func (rt *roundTrip) renewed() bool {
	for _, r := range rt.remedies {
		if r.action == actRefresh {
			return true
		}
	}
	return false
}

// stop reports that the guard keeps the challenge c from being remedied.
func (rt *roundTrip) stop(ctx context.Context, c *challenge, why string) {
	rt.t.event(ctx, slog.LevelInfo, "stepup: guard stopped remedy", append(c.attrs(rt.req), slog.String("why", why))...)
}

// newer reports whether the source holds a newer token than the one s
// carried: another request remedied the challenge already.
func (rt *roundTrip) newer(ctx context.Context, c *challenge, s sent) bool {
	tok, gen, _ := rt.ts.current()
	if tok == nil || gen == s.gen {
		return false
	}
	rt.t.event(ctx, slog.LevelDebug, "stepup: replaying with a newer token", c.attrs(rt.req)...)
	return true
}

// replayNewer replays with the newer token if there is one.
func (rt *roundTrip) replayNewer(ctx context.Context, resp *http.Response, c *challenge, s sent) (io.ReadCloser, bool) {
	if !rt.newer(ctx, c, s) {
		return nil, false
	}
	return rt.release(ctx, resp)
}

func (rt *roundTrip) useNonce(ctx context.Context, resp *http.Response, c *challenge) (io.ReadCloser, bool, error) {
	if err := rt.t.DPoPNonce(rt.req, c.nonce); err != nil {
		rt.t.event(ctx, slog.LevelWarn, "stepup: challenge ignored",
			append(c.attrs(rt.req), slog.String("why", "DPoPNonce failed: "+err.Error()))...)
		return nil, false, nil
	}
	body, ok := rt.release(ctx, resp)
	if ok {
		rt.remedies = append(rt.remedies, remedy{key: c.key, action: c.action})
	}
	return body, ok, nil
}

// refresh answers an invalid token (D-2): a newer token, else a refresh,
// else a re-authorization.
func (rt *roundTrip) refresh(ctx context.Context, resp *http.Response, c *challenge, s sent) (io.ReadCloser, bool, error) {
	if body, ok := rt.replayNewer(ctx, resp, c, s); ok {
		return body, true, nil
	}
	if s.tok != nil && s.tok.RefreshToken != "" && rt.ts.canRefresh() && rt.failedGen != s.gen {
		_, err := rt.ts.refreshGen(ctx, s.gen)
		if err == nil {
			rt.t.event(ctx, slog.LevelInfo, "stepup: refreshed", c.attrs(rt.req)...)
			body, ok := rt.release(ctx, resp)
			if ok {
				rt.remedies = append(rt.remedies, remedy{key: c.key, action: c.action})
			}
			return body, ok, nil
		}
		if ctxErr := ctx.Err(); ctxErr != nil {
			closeBody(resp.Body) // the caller is gone: no connection to save
			return nil, false, ctxErr
		}
		rt.failedGen = s.gen
		rt.t.event(ctx, slog.LevelWarn, "stepup: refresh failed", append(c.attrs(rt.req), slog.String("error", err.Error()))...)
	}
	c.reason = ReasonReauthorization
	return rt.escalate(ctx, resp, c, s)
}

// escalate asks the Escalator for a new authorization, once for all the
// requests that drew the same challenge with the same token. The response
// is closed before waiting: a user may take minutes to consent.
func (rt *roundTrip) escalate(ctx context.Context, resp *http.Response, c *challenge, s sent) (io.ReadCloser, bool, error) {
	t := rt.t
	if body, ok := rt.replayNewer(ctx, resp, c, s); ok {
		return body, true, nil
	}
	if t.Escalator == nil {
		t.event(ctx, slog.LevelInfo, "stepup: challenge ignored", append(c.attrs(rt.req), slog.String("why", "no Escalator"))...)
		return nil, false, nil
	}
	if why := t.guard.blocked(c.key, s.gen, rt.ts.grantedKey(), time.Now(), t.exhaustedTTL()); why != "" {
		rt.stop(ctx, c, why)
		return nil, false, nil
	}
	status := resp.StatusCode
	body, ok := rt.release(ctx, resp)
	if !ok {
		return nil, false, nil
	}
	err := t.escalations.do(ctx, escalationKey{c.key, s.gen}, func() func(context.Context) error {
		// This runs under the flight group's lock: no user code here.
		er, refused := rt.escalationRequest(ctx, c, s)
		return func(ctx context.Context) error {
			if refused != "" {
				t.event(ctx, slog.LevelWarn, "stepup: resource_metadata refused",
					append(c.attrs(er.Request), slog.String("why", refused))...)
			}
			return t.runEscalation(ctx, c, s, er, status)
		}
	}, func() {
		t.event(ctx, slog.LevelDebug, "stepup: waiting for an escalation in progress", c.attrs(rt.req)...)
	})
	if err != nil {
		closeBody(body)
		return nil, false, escalationFailed(err, c, s, status)
	}
	rt.remedies = append(rt.remedies, remedy{key: c.key, action: c.action, escalated: true})
	return body, true, nil
}

// escalationFailed returns err, the error an escalation flight ended with,
// as the [*EscalationError] RoundTrip documents, unless it is one already
// or is the caller's context ending. A flight can also end with a panic
// outside the Escalator (in a Logger, say) or a runtime.Goexit; callers
// such as [CheckRetry] must still recognise the failure.
func escalationFailed(err error, c *challenge, s sent, status int) error {
	var e *EscalationError
	if errors.As(err, &e) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return &EscalationError{Reason: c.reason, Challenge: c.oauth, Status: status,
		msg: redact(err.Error(), s.tok), err: err}
}

// escalationRequest builds what the Escalator sees, and says why the
// resource_metadata was refused, if it was. It runs on the caller's
// goroutine: it reads the caller's request.
func (rt *roundTrip) escalationRequest(ctx context.Context, c *challenge, s sent) (*EscalationRequest, string) {
	oc := &c.oauth
	meta, why := validateResourceMetadata(oc.ResourceMetadata, rt.ts.origin, rt.t.AllowCrossOriginMetadata)
	r := rt.req.Clone(ctx)
	r.Body, r.GetBody = nil, nil
	r.Header.Del("Authorization")
	return &EscalationRequest{
		Reason:           c.reason,
		Challenge:        *oc,
		Scopes:           rt.ts.scopesToRequest(oc.Scope),
		ChallengedScopes: oc.Scope,
		ACRValues:        oc.ACRValues,
		MaxAge:           oc.MaxAge,
		Claims:           oc.Claims,
		Resource:         rt.ts.resource,
		ResourceMetadata: meta,
		RejectedToken:    s.tok,
		Request:          r,
	}, why
}

// runEscalation calls the Escalator and installs its token. It runs on the
// flight's goroutine.
func (t *Transport) runEscalation(ctx context.Context, c *challenge, s sent, er *EscalationRequest, status int) error {
	ts := t.Source
	if _, gen, _ := ts.current(); gen != s.gen {
		return nil // a newer token arrived while this flight started
	}
	t.event(ctx, slog.LevelInfo, "stepup: escalation start", slog.Any("request", er))
	g, err := callEscalator(ctx, t.Escalator, er)
	var tok *oauth2.Token
	if err == nil {
		if g == nil || g.Token == nil || g.Token.AccessToken == "" {
			err = errors.New("the Escalator returned no access token")
		} else {
			tok = g.Token
		}
	}
	if err != nil {
		e := &EscalationError{Reason: er.Reason, Challenge: er.Challenge, Status: status,
			msg: redact(err.Error(), s.tok, tok), err: err}
		outcome := "failed"
		if e.Declined() {
			outcome = "declined"
			t.guard.declined(c.key, ts.grantedKey(), time.Now())
		}
		t.event(ctx, slog.LevelWarn, "stepup: escalation end",
			slog.String("outcome", outcome), slog.String("reason", er.Reason.String()), slog.String("error", e.Error()))
		return e
	}
	requested := er.Scopes
	if g.Scopes != nil {
		requested = g.Scopes
	}
	if g.Refresh != nil {
		ts.SetRefreshFunc(g.Refresh)
	}
	gen := ts.install(tok, requested)
	_, granted := ts.Scopes()
	t.guard.escalated(c.key, gen, granted.sortedKey(), time.Now())
	t.event(ctx, slog.LevelInfo, "stepup: escalation end",
		slog.String("outcome", "ok"), slog.String("reason", er.Reason.String()), slog.String("granted", granted.String()))
	return nil
}

// callEscalator calls e, turning a panic into an error.
func callEscalator(ctx context.Context, e Escalator, er *EscalationRequest) (g *Grant, err error) {
	defer func() {
		if r := recover(); r != nil {
			g, err = nil, fmt.Errorf("the Escalator panicked: %v", r)
		}
	}()
	return e.Escalate(ctx, er)
}

// action is what a challenge calls for.
type action int

const (
	actEscalate action = iota
	actRefresh
	actDPoPNonce
)

// challenge is a challenge the Transport may answer.
type challenge struct {
	oauth  OAuthChallenge
	code   string // the error code acted on, e.g. invalid_token for a bare 401 after a token; not part of key
	action action
	reason Reason // for actEscalate
	nonce  string // for actDPoPNonce
	key    challengeKey
	status int
}

// conformant reports whether the status is the one RFC 6750 §3.1, RFC 9470
// and RFC 9449 give for the error code. A mismatch is only logged: the code
// decides (R-6750-11).
func (c *challenge) conformant() bool {
	if c.code == ErrorInsufficientScope {
		return c.status == http.StatusForbidden
	}
	return c.status == http.StatusUnauthorized
}

func (c *challenge) attrs(req *http.Request) []slog.Attr {
	return []slog.Attr{
		slog.Int("status", c.status),
		slog.String("scheme", c.oauth.Scheme),
		slog.String("error", c.code),
		slog.String("scope", c.oauth.Scope.String()),
		slog.String("url", redactedURL(req)),
	}
}

// classify picks the challenge of resp to answer and what it calls for, or
// says why none is answered (D-7, D-8). Dispatch is on the error code; the
// status only tells a bare 401 from a bare 403 (R-6750-11).
func (t *Transport) classify(resp *http.Response, s sent, originKey string) (*challenge, string) {
	ch, oc, why := pickOAuth(resp, s)
	if why != "" {
		return nil, why
	}
	c := &challenge{oauth: oc, code: oc.Error, status: resp.StatusCode}
	switch oc.Error {
	case "":
		switch {
		case resp.StatusCode == http.StatusUnauthorized && s.tok == nil:
			c.reason = ReasonAuthorizationRequired // D-1
		case resp.StatusCode == http.StatusUnauthorized:
			c.code, c.action = ErrorInvalidToken, actRefresh // R-6750-10
		case len(oc.Scope) > 0 && ch != nil && ch.IsScheme(SchemeBearer) && !t.StrictInsufficientScope:
			c.code, c.reason = ErrorInsufficientScope, ReasonInsufficientScope
		default:
			return nil, "403 challenge without error code"
		}
	case ErrorInvalidToken:
		if s.tok == nil {
			c.reason = ReasonAuthorizationRequired
		} else {
			c.action = actRefresh
		}
	case ErrorInsufficientScope:
		c.reason = ReasonInsufficientScope
	case ErrorInsufficientUserAuthentication:
		c.reason = ReasonUserAuthentication
	case ErrorInsufficientClaims:
		if oc.Claims == nil {
			return nil, "insufficient_claims without claims"
		}
		c.reason = ReasonClaims
	case ErrorUseDPoPNonce:
		nonce, why := t.dpopNonce(resp, ch)
		if why != "" {
			return nil, why
		}
		c.action, c.nonce = actDPoPNonce, nonce
	default:
		return nil, "error code " + oc.Error + " is not answered"
	}
	c.key = newChallengeKey(originKey, &c.oauth)
	return c, ""
}

// pickOAuth returns the OAuth challenge of resp to answer, matching the
// scheme of the token s carried, or why there is none. A 401 without any
// challenge gives a nil challenge and an empty OAuth view.
func pickOAuth(resp *http.Response, s sent) (*Challenge, OAuthChallenge, string) {
	if len(resp.Header["Www-Authenticate"]) == 0 {
		return nil, OAuthChallenge{MaxAge: NoMaxAge}, ""
	}
	cs, err := ParseChallenges(resp.Header)
	if err != nil {
		return nil, OAuthChallenge{}, err.Error()
	}
	scheme := SchemeBearer
	if s.tok != nil {
		scheme = s.tok.Type()
	}
	ch, why := pick(cs, scheme)
	if why != "" {
		return nil, OAuthChallenge{}, why
	}
	oc, err := ch.OAuth()
	if err != nil {
		return nil, OAuthChallenge{}, "malformed challenge: " + err.Error()
	}
	return ch, oc, ""
}

// pick returns the one challenge for scheme, or the first OAuth challenge
// when there is none for scheme. A malformed or repeated challenge for the
// chosen scheme means the header cannot be trusted (D-8).
func pick(cs []Challenge, scheme string) (*Challenge, string) {
	chosen := scheme
	if !hasScheme(cs, scheme) {
		switch {
		case hasScheme(cs, SchemeBearer):
			chosen = SchemeBearer
		case hasScheme(cs, SchemeDPoP):
			chosen = SchemeDPoP
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
			// Among others a repeated parameter (R-9110-2), which the
			// parser flags: a remedy chosen from one of two values would
			// be the attacker's pick (V15).
			return nil, "malformed challenge: " + c.Err.Error()
		}
		if found != nil {
			return nil, "more than one " + chosen + " challenge"
		}
		found = c
	}
	return found, ""
}

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
func (t *Transport) dpopNonce(resp *http.Response, ch *Challenge) (string, string) {
	if ch == nil || !ch.IsScheme(SchemeDPoP) {
		return "", "use_dpop_nonce outside a DPoP challenge"
	}
	if t.DPoPNonce == nil {
		return "", "use_dpop_nonce without a DPoPNonce hook"
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

// redactedURL is req's URL without query or user information, for events.
func redactedURL(req *http.Request) string {
	u := req.URL
	if u == nil {
		return ""
	}
	return u.Scheme + "://" + u.Host + u.EscapedPath()
}

func closeBody(b io.ReadCloser) {
	if b != nil {
		b.Close()
	}
}

// drainClose closes the body of resp, a challenge response about to be
// replayed. A body that declares a length of at most maxDrain is read to
// its end first, so that its connection can carry the replay. Any other is
// closed unread: reading a body of unknown length would wait on a server
// that sends the headers and stalls the rest, holding the request for as
// long as it likes, and an unread body costs only its connection (on
// HTTP/2, its stream). A server that declares a short body and stalls it
// still holds the request until its context ends.
func drainClose(resp *http.Response) {
	if resp.Body == nil {
		return
	}
	if resp.ContentLength >= 0 && resp.ContentLength <= maxDrain {
		_, _ = io.CopyN(io.Discard, resp.Body, maxDrain) // bounded even if the length lies
	}
	resp.Body.Close()
}
