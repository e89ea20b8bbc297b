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
)

// defaultMaxReplays is how many times a request is replayed at most after
// remedying its challenges, unless [Transport.MaxReplays] says otherwise.
const defaultMaxReplays = 2

// maxDrain is the longest challenge response body read before it is closed
// for a replay: enough to reuse the connection after a typical error body,
// never an unbounded read.
const maxDrain = 64 << 10

// Transport is an [http.RoundTripper] that authorizes requests with the
// token of a [TokenSource] and answers the OAuth challenges
// (WWW-Authenticate, RFC 9110 §11) of the responses as the package
// documentation's behaviour table says, under its guard: it refreshes a
// rejected token, has the source's [Escalator] obtain a new authorization
// where only one can help, and replays the request with the new token. A
// challenge it does not act on comes back as the response, untouched and
// unread; one it acted on and could not cure, as a [*ChallengeError].
//
// The remedies, and the escalation policy, are the Source's, which any
// number of Transports may share (see the package documentation,
// "Concurrency and timeouts"); a Transport's fields say only how it reads
// responses and replays its own requests.
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
// concurrent use.
type Transport struct {
	// Base makes the requests. Nil means [http.DefaultTransport].
	Base http.RoundTripper

	// Source holds the token and runs the remedies. It is required.
	Source *TokenSource

	// MaxReplays caps how often one request is replayed. Zero means
	// 2. A negative value turns replays off, and with them
	// the answering of challenges: responses come back untouched, and the
	// Transport only attaches tokens.
	MaxReplays int

	// StrictInsufficientScope, when set, stops a 403 Bearer challenge that
	// carries scope but no error from counting as insufficient_scope. By
	// default it counts: the MCP go-sdk server answers that way.
	StrictInsufficientScope bool

	// BufferBody is how many bytes of a request body without GetBody the
	// Transport may buffer so that it can replay the request. Zero never
	// buffers. A request whose body cannot be replayed still has its
	// challenge remedied, then fails with a [*ChallengeError] wrapping
	// [ErrBodyNotReplayable]: sending it again succeeds with the new
	// token. A body longer than BufferBody is streamed.
	BufferBody int64

	// AllowCrossOriginMetadata lets a resource_metadata URL of another
	// origin than the resource reach the Escalator. Link-local addresses,
	// and private or loopback ones for a public resource, are refused
	// anyway.
	AllowCrossOriginMetadata bool

	// DPoPNonce, when set, receives the nonce a resource server demands
	// in DPoP proofs (RFC 9449 §9) for req, which drew the use_dpop_nonce
	// challenge, when the proofs are the caller's own: a token bound by
	// the source's key ([WithDPoP]) has its nonces kept by the source,
	// with no hook. It typically stores the nonce where the code that signs
	// DPoP proofs for req's origin finds it, and the request is then
	// replayed once. req is the caller's: read it, never modify it. An
	// error cancels the replay and the challenge response is returned as
	// it is; so is every such challenge to an unbound token when
	// DPoPNonce is nil.
	DPoPNonce func(req *http.Request, nonce string) error

	// Logger receives events: challenges seen (what the header said and
	// what stepup concluded) and ignored (and why), refreshes,
	// escalations, the guard stopping a remedy. Tokens are never logged.
	// Nil means silent.
	Logger *slog.Logger
}

// RoundTrip sends req with the current token and answers the challenge of
// the response, if any, as described on [Transport]. It returns a response
// whenever one was obtained and no remedy was tried in vain; a
// [*ChallengeError] when a challenge it acted on was not cured; and the
// context's error when req's context ended while waiting for a remedy.
//
// As any RoundTripper, it closes req.Body, even on errors; the caller closes
// the body of the returned response. The bodies of challenge responses it
// answers itself are closed before the remedy, and read to their end first
// only when they declare a length of at most 64 KiB.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	ts := t.Source
	if ts == nil {
		closeBody(req.Body)
		return nil, errNoSource
	}
	if !ts.matchesOrigin(req.URL) {
		// Another origin, as on a redirect hop: no token goes there, and
		// its challenges are not ours to answer (RFC 6750 §5.3).
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

// maxReplays is MaxReplays with its default. A negative MaxReplays never
// gets here: such a Transport answers no challenge.
func (t *Transport) maxReplays() int {
	if t.MaxReplays == 0 {
		return defaultMaxReplays
	}
	return t.MaxReplays
}

func (t *Transport) event(ctx context.Context, level slog.Level, msg string, attrs ...slog.Attr) {
	if t.Logger == nil || !t.Logger.Enabled(ctx, level) {
		return
	}
	t.Logger.LogAttrs(ctx, level, msg, attrs...)
}

// remedy is a challenge a request has remedied.
type remedy struct {
	key       challengeKey
	action    action
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
	refreshErr error                         // the failed refresh of the token first sent
}

// run is RoundTrip for a request to the resource's origin: send, classify
// the challenge, remedy it, replay, until a response needs nothing more.
func (rt *roundTrip) run() (*http.Response, error) {
	ctx := rt.req.Context()
	if err := rt.prepareBody(); err != nil {
		return nil, err
	}
	s, err := rt.firstToken(ctx)
	if err != nil {
		closeBody(rt.firstBody)
		return nil, err
	}
	resp, err := rt.send(rt.firstBody, s)
	for err == nil {
		if !hasChallenge(resp) {
			rt.ts.noteAccepted(s.gen)
			return resp, nil
		}
		c, v := rt.t.classify(resp, s, rt.ts.originKey)
		if c == nil {
			rt.t.event(ctx, slog.LevelInfo, "stepup: challenge ignored",
				slog.String("why", v.why), slog.Int("status", resp.StatusCode), slog.String("url", rt.where()))
			return resp, nil
		}
		rt.logChallenge(ctx, c)
		o := rt.answer(ctx, resp, c, s)
		switch o.kind {
		case untouched:
			return resp, nil
		case failed:
			return nil, o.err
		}
		rt.replays++
		s = rt.current()
		resp, err = rt.send(o.body, s)
	}
	return nil, err
}

func (rt *roundTrip) logChallenge(ctx context.Context, c *challenge) {
	if rt.t.Logger == nil {
		return
	}
	attrs := c.attrs(rt.where())
	if !c.conformant(c.status) {
		// Logged, never acted on: the error code decides (RFC 6750 §3.1).
		attrs = append(attrs, slog.Bool("nonconformant_status", true))
	}
	rt.t.event(ctx, slog.LevelDebug, "stepup: challenge", attrs...)
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

// replayBody returns a fresh body for a replay.
func (rt *roundTrip) replayBody() (io.ReadCloser, error) {
	if rt.getBody == nil {
		return rt.req.Body, nil // nil or http.NoBody
	}
	return rt.getBody()
}

// firstToken returns the token for the first send, refreshing an expired one
// first rather than after a 401. When that refresh cannot be done the
// expired token goes out anyway and the resource's answer decides.
func (rt *roundTrip) firstToken(ctx context.Context) (*snapshot, error) {
	if rt.ts.store != nil {
		if err := rt.ts.load(ctx); err != nil {
			return nil, err
		}
	}
	s := rt.current()
	if s.tok == nil || s.tok.RefreshToken == "" || s.tok.Valid() {
		return s, nil
	}
	err := rt.ts.refreshFrom(ctx, s.gen)
	if err == nil {
		rt.t.event(ctx, slog.LevelInfo, "stepup: refreshed", slog.String("when", "token expired before sending"))
		return rt.current(), nil
	}
	if ctxErr := ctx.Err(); ctxErr != nil {
		return nil, ctxErr
	}
	if !errors.Is(err, ErrNoRefreshToken) {
		rt.refreshErr = err // the 401 it will likely draw is answered with it, not a second try
		rt.t.event(ctx, slog.LevelWarn, "stepup: refresh failed",
			slog.String("when", "token expired before sending"), slog.String("error", err.Error()))
	}
	return s, nil
}

// where is the request's URL for events, without query or user
// information.
func (rt *roundTrip) where() string { return redactedURL(rt.req) }

func (rt *roundTrip) current() *snapshot { return rt.ts.snap.Load() }

// send sends body with the token of s on a copy of the request: the
// caller's request is never modified (the RoundTripper contract).
func (rt *roundTrip) send(body io.ReadCloser, s *snapshot) (*http.Response, error) {
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
		if s.dpop != nil {
			return rt.sendProved(r2, body, s)
		}
	}
	return rt.t.base().RoundTrip(r2)
}

// sendProved sends r2, which carries the DPoP-bound token of s, with a
// fresh proof of it (RFC 9449 §7.1), and keeps the resource's nonce from
// the answer: any response may renew it (RFC 9449 §9).
func (rt *roundTrip) sendProved(r2 *http.Request, body io.ReadCloser, s *snapshot) (*http.Response, error) {
	if err := dpopProve(s.dpop, r2, r2.Header, s.tok.AccessToken); err != nil {
		closeBody(body)
		return nil, err
	}
	resp, err := rt.t.base().RoundTrip(r2)
	if err == nil {
		s.dpop.Nonces.Observe(r2.URL, resp.Header)
	}
	return resp, err
}

// hasChallenge reports whether resp may carry a challenge to answer: a 403
// with WWW-Authenticate, or any 401 (one without the header breaks RFC 9110
// §11.6.1 but still says that authorization is needed). It is the only look
// the Transport takes at other responses.
func hasChallenge(resp *http.Response) bool {
	return resp.StatusCode == http.StatusUnauthorized ||
		resp.StatusCode == http.StatusForbidden && len(resp.Header["Www-Authenticate"]) > 0
}

// outcomeKind says what the request does next.
type outcomeKind int

const (
	// untouched: the challenge is not answered after all; the response
	// goes back to the caller as it is, unread.
	untouched outcomeKind = iota
	// replay: the challenge was remedied; the request goes again with
	// the new token and outcome.body.
	replay
	// failed: the request fails with outcome.err; the response was
	// closed.
	failed
)

// outcome is what [roundTrip.answer] came to.
type outcome struct {
	kind outcomeKind
	body io.ReadCloser // replay: the body to send
	err  error         // failed: why
}

// answer remedies the challenge c of resp, a response to a request sent
// with s, and says what the request does next. Only a replay or a failure
// closes resp; one left untouched is the caller's to return.
func (rt *roundTrip) answer(ctx context.Context, resp *http.Response, c *challenge, s *snapshot) outcome {
	if rt.t.MaxReplays < 0 {
		rt.ignored(ctx, slog.LevelInfo, c, "replays are off")
		return outcome{kind: untouched}
	}
	if err := rt.applyGuard(ctx, c); err != nil {
		drainClose(resp)
		return outcome{kind: failed, err: rt.challengeError(c, s, err)}
	}
	if why := rt.unanswerable(c, s); why != "" {
		rt.ignored(ctx, slog.LevelInfo, c, why)
		return outcome{kind: untouched}
	}
	if c.action == actDPoPNonce && s.dpop != nil {
		s.dpop.Nonces.Set(rt.req.URL, c.nonce) // the replay's proof carries it
	} else if c.action == actDPoPNonce {
		// Before resp is closed: a hook that fails leaves the challenge
		// unanswered and the response untouched.
		if err := rt.t.DPoPNonce(rt.req, c.nonce); err != nil {
			rt.ignored(ctx, slog.LevelInfo, c, "DPoPNonce failed: "+err.Error())
			return outcome{kind: untouched}
		}
	}
	var body io.ReadCloser
	if rt.replayable {
		var err error
		if body, err = rt.replayBody(); err != nil {
			rt.ignored(ctx, slog.LevelWarn, c, "GetBody failed: "+err.Error())
			return outcome{kind: untouched}
		}
	}
	// No connection is held while the remedy runs: a person may take
	// minutes to consent.
	drainClose(resp)
	if err := rt.remedy(ctx, c, s); err != nil {
		closeBody(body)
		return outcome{kind: failed, err: rt.challengeError(c, s, err)}
	}
	if !rt.replayable {
		// Remedied all the same: the caller's own retry then succeeds
		// instead of drawing the same challenge.
		return outcome{kind: failed, err: rt.challengeError(c, s, ErrBodyNotReplayable)}
	}
	return outcome{kind: replay, body: body}
}

func (rt *roundTrip) ignored(ctx context.Context, level slog.Level, c *challenge, why string) {
	rt.t.event(ctx, level, "stepup: challenge ignored", append(c.attrs(rt.where()), slog.String("why", why))...)
}

// applyGuard applies the per-request guard to c: it returns why c must not
// be remedied in this request, or nil. A challenge that came straight back
// after its escalation is recorded in the source's guard, so that later
// requests are not asked to escalate it again either.
func (rt *roundTrip) applyGuard(ctx context.Context, c *challenge) error {
	var err error
	switch r := rt.remedied(c.key); {
	case r != nil:
		if r.escalated {
			rt.ts.markSpent(c.key)
		}
		err = ErrExhausted // RFC 9110 §15.5.2: the same challenge after a remedy
	case c.action == actRefresh && rt.renewed():
		// One renewal per request. A bare 401 and a 401 invalid_token
		// are different challenges, but both reject the token just
		// renewed: a second renewal would only refresh or prompt again.
		err = ErrExhausted
	case rt.replays >= rt.t.maxReplays():
		err = ErrReplayLimit
	default:
		return nil
	}
	rt.t.event(ctx, slog.LevelInfo, "stepup: guard stopped remedy", append(c.attrs(rt.where()), slog.String("why", err.Error()))...)
	return err
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
// rejection.
func (rt *roundTrip) renewed() bool {
	for _, r := range rt.remedies {
		if r.action == actRefresh {
			return true
		}
	}
	return false
}

// unanswerable says why c, which the behaviour table answers, cannot be
// answered by this Transport, or "". Without an Escalator a newer token,
// or a refresh, is all the Transport can try.
func (rt *roundTrip) unanswerable(c *challenge, s *snapshot) string {
	switch c.action {
	case actEscalate:
		if rt.ts.escalator == nil && !rt.newerToken(s) {
			return "no Escalator"
		}
	case actRefresh:
		if rt.ts.escalator == nil && !rt.newerToken(s) && !rt.ts.canRefresh(s.gen) {
			return "no Escalator, and the token cannot be refreshed"
		}
	}
	return ""
}

// newerToken reports whether the source holds a newer token than the one s
// carried: another request remedied the challenge already.
func (rt *roundTrip) newerToken(s *snapshot) bool {
	tok, gen, _ := rt.ts.current()
	return tok != nil && gen != s.gen
}

// remedy runs the remedy c calls for, waiting for it.
func (rt *roundTrip) remedy(ctx context.Context, c *challenge, s *snapshot) error {
	switch c.action {
	case actDPoPNonce:
		rt.remedies = append(rt.remedies, remedy{key: c.key, action: c.action})
		return nil
	case actRefresh:
		return rt.refresh(ctx, c, s)
	case actEscalate:
		return rt.escalate(ctx, c, s)
	}
	return fmt.Errorf("stepup: no remedy for %v", c.action) // unreachable: classify returns none
}

// challengeError returns err, why the challenge c was not cured, as the
// [*ChallengeError] RoundTrip documents, unless it is the caller's context
// ending.
func (rt *roundTrip) challengeError(c *challenge, s *snapshot, err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		if ctxErr := rt.req.Context().Err(); ctxErr != nil {
			return ctxErr
		}
	}
	tok, _, _ := rt.ts.current()
	return &ChallengeError{Status: c.status, Challenge: c.oauth, Reason: c.reason,
		msg: redact(err.Error(), s.tok, tok), err: err}
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

// drainClose closes the body of resp, a challenge response answered by the
// Transport. A body that declares a length of at most maxDrain is read to
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
