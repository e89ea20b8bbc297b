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
	// DefaultEscalationTimeout is how long an escalation may run: long
	// enough for a person to read a consent page and log in.
	DefaultEscalationTimeout = 5 * time.Minute
)

// maxDrain is the longest challenge response body read before it is closed
// for a replay: enough to reuse the connection after a typical error body,
// never an unbounded read.
const maxDrain = 64 << 10

// DPoPNonceFunc receives the nonce a resource server demands in DPoP proofs
// (RFC 9449 §9) for req, which drew the use_dpop_nonce challenge, when the
// proofs are signed by the caller's own code rather than by the source's
// key ([WithDPoP], which keeps the nonces itself and needs no hook). It
// typically stores the nonce where the code that signs DPoP proofs for
// req's origin finds it; the [Transport] then replays the request once. req
// is the caller's request: read it, never modify it. An error cancels the
// replay and the challenge response is returned as it is.
type DPoPNonceFunc func(req *http.Request, nonce string) error

// Transport is an [http.RoundTripper] that authorizes requests with the
// token of a [TokenSource] and answers the OAuth challenges
// (WWW-Authenticate, RFC 9110 §11) of the responses, as the package
// documentation's behaviour table says: it refreshes a rejected token,
// asks its [Escalator] for a new authorization where only one can help,
// and replays the request with the new token.
//
// A challenge it does not act on (malformed, over a parser limit, from
// another origin than the resource's, an error code it does not answer, an
// escalation with no Escalator) comes back as the response, untouched and
// unread. A challenge it acted on and could not cure comes back as a
// [*ChallengeError]: the Escalator failed or the user declined, or the
// guard stopped a remedy already tried. The guard bounds the work: each
// challenge is remedied at most once per request, a request is replayed at
// most MaxReplays times, and a challenge that came straight back after its
// escalation, or whose escalation was declined, is not escalated again for
// ExhaustedTTL unless the granted scopes change.
//
// The Transport is policy: the remedies themselves run on its Source, which
// any number of Transports may share. Requests rejected with the same token
// share one refresh; one escalation runs at a time for the resource, and
// requests that draw the same challenge share it. No lock is held while a
// request is in flight.
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

	// Escalator obtains new authorizations. When nil, challenges that need
	// one are returned untouched.
	Escalator Escalator

	// MaxReplays caps how often one request is replayed. Zero means
	// DefaultMaxReplays. A negative value turns replays off, and with them
	// the answering of challenges: responses come back untouched, and the
	// Transport only attaches tokens.
	MaxReplays int

	// ExhaustedTTL is how long an exhausted or declined challenge is not
	// escalated again. Zero means DefaultExhaustedTTL.
	ExhaustedTTL time.Duration

	// EscalationTimeout bounds an escalation this Transport starts. The
	// escalation does not end with the request that started it: a
	// request whose context ends (an [http.Client] Timeout, say) stops
	// waiting, but the escalation goes on and installs its grant, so that
	// a person who consents after the request gave up is not asked again
	// on the next one. Zero means DefaultEscalationTimeout.
	EscalationTimeout time.Duration

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

	// DPoPNonce, when set, receives the nonce of a DPoP use_dpop_nonce
	// challenge to a token not bound by the source's [WithDPoP] key
	// before the request is replayed once. When nil, such challenges are
	// returned untouched; those to a token bound by the source's key are
	// answered by the source itself.
	DPoPNonce DPoPNonceFunc

	// Logger receives events: challenges seen (what the header said and
	// what stepup concluded) and ignored (and why), refreshes,
	// escalations, the guard stopping a remedy. Tokens are never logged.
	// Nil means silent.
	Logger *slog.Logger
}

var errNoSource = errors.New("stepup: Transport.Source is nil")

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
		return DefaultMaxReplays
	}
	return t.MaxReplays
}

func (t *Transport) exhaustedTTL() time.Duration {
	if t.ExhaustedTTL <= 0 {
		return DefaultExhaustedTTL
	}
	return t.ExhaustedTTL
}

func (t *Transport) escalationTimeout() time.Duration {
	if t.EscalationTimeout <= 0 {
		return DefaultEscalationTimeout
	}
	return t.EscalationTimeout
}

func (t *Transport) event(ctx context.Context, level slog.Level, msg string, attrs ...slog.Attr) {
	if t.Logger == nil || !t.Logger.Enabled(ctx, level) {
		return
	}
	t.Logger.LogAttrs(ctx, level, msg, attrs...)
}

// sent is the token a request went out with: the source's snapshot when
// the request was sent. Its tok is nil when none was attached.
type sent = *snapshot

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
		var body io.ReadCloser
		var replay bool
		body, replay, err = rt.answer(ctx, resp, c, s)
		if err != nil {
			return nil, err
		}
		if !replay {
			return resp, nil // untouched
		}
		rt.replays++
		s = rt.current()
		resp, err = rt.send(body, s)
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
func (rt *roundTrip) firstToken(ctx context.Context) (sent, error) {
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

func (rt *roundTrip) current() sent { return rt.ts.snap.Load() }

// send sends body with the token of s on a copy of the request: the
// caller's request is never modified (the RoundTripper contract).
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
		if s.dpop != nil {
			if err := dpopProve(s.dpop, r2, h, s.tok.AccessToken); err != nil {
				closeBody(body)
				return nil, err
			}
			resp, err := rt.t.base().RoundTrip(r2)
			if err == nil {
				s.dpop.Nonces.Observe(r2.URL, resp.Header) // RFC 9449 §9: any response may renew it
			}
			return resp, err
		}
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

// answer remedies the challenge c of resp, a response to a request sent
// with s. To replay, it returns the body to send and true, having closed
// resp. It returns false and no error when the challenge is not to be
// answered after all, resp untouched; and an error after closing resp.
func (rt *roundTrip) answer(ctx context.Context, resp *http.Response, c *challenge, s sent) (io.ReadCloser, bool, error) {
	if rt.t.MaxReplays < 0 {
		rt.t.event(ctx, slog.LevelInfo, "stepup: challenge ignored", append(c.attrs(rt.where()), slog.String("why", "replays are off"))...)
		return nil, false, nil
	}
	if err := rt.stopped(ctx, c); err != nil {
		drainClose(resp)
		return nil, false, rt.challengeError(c, s, err)
	}
	if why := rt.unanswerable(c, s); why != "" {
		rt.t.event(ctx, slog.LevelInfo, "stepup: challenge ignored", append(c.attrs(rt.where()), slog.String("why", why))...)
		return nil, false, nil
	}
	var body io.ReadCloser
	if rt.replayable {
		var err error
		if body, err = rt.replayBody(); err != nil {
			rt.t.event(ctx, slog.LevelWarn, "stepup: challenge ignored",
				append(c.attrs(rt.where()), slog.String("why", "GetBody failed: "+err.Error()))...)
			return nil, false, nil
		}
	}
	// No connection is held while the remedy runs: a person may take
	// minutes to consent.
	drainClose(resp)
	if err := rt.remedy(ctx, c, s); err != nil {
		closeBody(body)
		return nil, false, rt.challengeError(c, s, err)
	}
	if !rt.replayable {
		// Remedied all the same: the caller's own retry then succeeds
		// instead of drawing the same challenge.
		return nil, false, rt.challengeError(c, s, ErrBodyNotReplayable)
	}
	return body, true, nil
}

// stopped applies the per-request guard: it returns why c must not be
// remedied in this request, or nil.
func (rt *roundTrip) stopped(ctx context.Context, c *challenge) error {
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
// answered by this Transport, or "". It runs before resp is closed, so that
// such a challenge comes back untouched. Without an Escalator a newer
// token, or a refresh, is all the Transport can try.
func (rt *roundTrip) unanswerable(c *challenge, s sent) string {
	switch c.action {
	case actDPoPNonce:
		if s.dpop != nil {
			s.dpop.Nonces.Set(rt.req.URL, c.nonce) // the replay's proof carries it
			break
		}
		if err := rt.t.DPoPNonce(rt.req, c.nonce); err != nil {
			return "DPoPNonce failed: " + err.Error()
		}
	case actEscalate:
		if rt.t.Escalator == nil && !rt.newerToken(s) {
			return "no Escalator"
		}
	case actRefresh:
		if rt.t.Escalator == nil && !rt.newerToken(s) && !rt.ts.canRefresh(s.gen) {
			return "no Escalator, and the token cannot be refreshed"
		}
	}
	return ""
}

// newerToken reports whether the source holds a newer token than the one s
// carried: another request remedied the challenge already.
func (rt *roundTrip) newerToken(s sent) bool {
	tok, gen, _ := rt.ts.current()
	return tok != nil && gen != s.gen
}

// remedy runs the remedy c calls for, waiting for it.
func (rt *roundTrip) remedy(ctx context.Context, c *challenge, s sent) error {
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

// refresh answers a rejected token: a newer token, else a refresh, else a
// re-authorization when the refresh cannot be done or the grant is gone.
// A refresh that failed for another reason fails the request with no
// prompt: an authorization server's hiccup must not send the user to a
// browser.
func (rt *roundTrip) refresh(ctx context.Context, c *challenge, s sent) error {
	if rt.newerToken(s) {
		rt.t.event(ctx, slog.LevelDebug, "stepup: replaying with a newer token", c.attrs(rt.where())...)
		return nil
	}
	err := rt.refreshErr // the refresh before sending failed: no second try
	if err == nil {
		err = rt.ts.refreshFrom(ctx, s.gen)
	}
	switch {
	case err == nil:
		rt.t.event(ctx, slog.LevelInfo, "stepup: refreshed", c.attrs(rt.where())...)
		rt.remedies = append(rt.remedies, remedy{key: c.key, action: c.action})
		return nil
	case ctx.Err() != nil:
		return ctx.Err()
	case !errors.Is(err, ErrNoRefreshToken) && !grantGone(err):
		rt.t.event(ctx, slog.LevelWarn, "stepup: refresh failed", append(c.attrs(rt.where()), slog.String("error", err.Error()))...)
		return err
	case rt.t.Escalator == nil:
		return err
	}
	rt.t.event(ctx, slog.LevelInfo, "stepup: re-authorizing", append(c.attrs(rt.where()), slog.String("why", err.Error()))...)
	return rt.escalate(ctx, c, s)
}

// escalate asks the source for a new authorization, run by this Transport's
// Escalator unless an escalation for the same challenge is under way.
func (rt *roundTrip) escalate(ctx context.Context, c *challenge, s sent) error {
	if rt.t.Escalator == nil {
		return nil // let through for a newer token only: replay with it
	}
	call := &escalationCall{t: rt.t, key: c.key, sent: s.gen, req: rt.escalationRequest(ctx, c, s)}
	escalated, err := rt.ts.escalate(ctx, call)
	if err != nil {
		return err
	}
	if escalated {
		rt.remedies = append(rt.remedies, remedy{key: c.key, action: c.action, escalated: true})
	} else {
		rt.t.event(ctx, slog.LevelDebug, "stepup: replaying with a newer token", c.attrs(rt.where())...)
	}
	return nil
}

// escalationRequest builds what the Escalator sees, but for the scopes,
// which the source fills in when the escalation starts.
func (rt *roundTrip) escalationRequest(ctx context.Context, c *challenge, s sent) *EscalationRequest {
	oc := &c.oauth
	meta, why := validateResourceMetadata(oc.ResourceMetadata, rt.ts.origin, rt.t.AllowCrossOriginMetadata)
	if why != "" {
		rt.t.event(ctx, slog.LevelWarn, "stepup: resource_metadata refused", append(c.attrs(rt.where()), slog.String("why", why))...)
	}
	r := rt.req.Clone(ctx)
	r.Body, r.GetBody = nil, nil
	r.Header.Del("Authorization")
	var rejected *oauth2.Token
	if s.tok != nil {
		cp := *s.tok
		rejected = &cp
	}
	return &EscalationRequest{
		Reason:           c.reason,
		Challenge:        *oc,
		ChallengedScopes: oc.Scope,
		ACRValues:        oc.ACRValues,
		MaxAge:           oc.MaxAge,
		Claims:           oc.Claims,
		Resource:         rt.ts.resource,
		ResourceMetadata: meta,
		RejectedToken:    rejected,
		Request:          r,
		DPoP:             rt.ts.dpopConfig(),
	}
}

// challengeError returns err, why the challenge c was not cured, as the
// [*ChallengeError] RoundTrip documents, unless it is the caller's context
// ending.
func (rt *roundTrip) challengeError(c *challenge, s sent, err error) error {
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
