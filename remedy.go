package stepup

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"golang.org/x/oauth2"
)

// How the TokenSource runs the remedies a Transport decides on: the refresh
// of a rejected token, once per token, and escalations, one at a time for
// the resource.

// refreshTimeout bounds a refresh that every caller has stopped waiting for.
// It runs on so that a rotated refresh token is not lost.
const refreshTimeout = time.Minute

// refreshFrom makes sure the current generation is newer than rejected,
// refreshing once for all the goroutines asking at the same time if it is
// not (OAuth 2.1 §4.3.1: a rotating refresh token is redeemed once).
func (s *TokenSource) refreshFrom(ctx context.Context, rejected uint64) error {
	return s.refreshes.do(ctx, rejected, func(ctx context.Context) error { return s.runRefresh(ctx, rejected) })
}

// runRefresh is the refresh flight of generation rejected. With a store,
// it runs alone across everyone sharing it, and takes the grant saved there
// when another source refreshed first: a rotating refresh token is
// redeemed once across processes too.
func (s *TokenSource) runRefresh(ctx context.Context, rejected uint64) error {
	s.mu.Lock()
	cur := s.snap.Load()
	tok, gen, refresh, gone := cur.tok, cur.gen, s.refresh, s.goneGen == rejected
	s.mu.Unlock()
	switch {
	case gen != rejected && tok != nil:
		return nil // someone installed a newer token meanwhile
	case tok == nil || refresh == nil:
		return ErrNoRefreshToken
	}
	err := s.exclusive(ctx, func(ctx context.Context, saved *SavedGrant) (*SavedGrant, error) {
		if usable(saved) && saved.Token.AccessToken != tok.AccessToken {
			if saved.Token.Valid() && s.adoptSaved(saved, tok) {
				return nil, nil
			}
			// Expired too: refresh the saved grant, whose refresh
			// token is the newest.
			s.mu.Lock()
			s.adoptLocked(saved)
			cur := s.snap.Load()
			tok, rejected, gone = cur.tok, cur.gen, false
			s.mu.Unlock()
		}
		switch {
		case tok.RefreshToken == "":
			return nil, ErrNoRefreshToken
		case gone:
			return nil, fmt.Errorf("%w, earlier", ErrInvalidGrant)
		}
		nt, err := callRefresh(s.withDPoP(ctx), refresh, tok, s.resource)
		if err != nil {
			return nil, s.refreshFailed(err, rejected, tok)
		}
		return s.installRefreshed(nt, tok, rejected)
	})
	var se *storeError
	if errors.As(err, &se) {
		// No exclusivity, no refresh: it could redeem a refresh token
		// another process redeems too. It may work next time.
		return fmt.Errorf("%w: %w", ErrRefreshFailed, err)
	}
	return err
}

// installRefreshed installs nt, refreshed from tok of generation rejected,
// and returns what the store keeps of it.
func (s *TokenSource) installRefreshed(nt, tok *oauth2.Token, rejected uint64) (*SavedGrant, error) {
	if nt == nil || nt.AccessToken == "" {
		return nil, fmt.Errorf("%w for %s: the RefreshFunc returned no access token", ErrRefreshFailed, s.origin)
	}
	if nt.RefreshToken == "" {
		// No refresh token in the response: the old one stays valid
		// (RFC 6749 §6).
		c := *nt
		c.RefreshToken = tok.RefreshToken
		nt = &c
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.snap.Load().gen != rejected {
		// An escalation installed a token of a newer grant meanwhile; a
		// token refreshed from the old grant must not replace it.
		return nil, nil
	}
	granted := s.granted // a refresh keeps the grant's scope unless it says otherwise
	if g, ok := scopeExtra(nt); ok {
		granted = g
	}
	s.installLocked(nt, s.requested, false)
	s.granted = granted
	return s.savedLocked(), nil
}

// refreshFailed records a refused refresh token and returns err, the error
// of the refresh of generation rejected, as a typed error without tokens.
func (s *TokenSource) refreshFailed(err error, rejected uint64, tok *oauth2.Token) error {
	if grantGone(err) {
		s.mu.Lock()
		if s.snap.Load().gen == rejected {
			s.goneGen = rejected
		}
		s.mu.Unlock()
		if !errors.Is(err, ErrInvalidGrant) {
			err = fmt.Errorf("%w: %w", ErrInvalidGrant, err)
		}
		return redactError(fmt.Errorf("stepup: refresh for %s: %w", s.origin, err), tok)
	}
	return redactError(fmt.Errorf("%w for %s: %w", ErrRefreshFailed, s.origin, err), tok)
}

// callRefresh calls f, turning a panic into an error that redactError can
// clean: a panic value is as likely as an error to hold the token.
func callRefresh(ctx context.Context, f RefreshFunc, tok *oauth2.Token, resource string) (nt *oauth2.Token, err error) {
	defer func() {
		if r := recover(); r != nil {
			nt, err = nil, fmt.Errorf("the RefreshFunc panicked: %v", r)
		}
	}()
	return f(ctx, tok, resource)
}

// escalation is the one escalation a source runs at a time.
type escalation struct {
	key      challengeKey
	grantSeq uint64 // the grant it started from
	done     chan struct{}
	// Set before done is closed: the outcome, and whether the grant was
	// installed. A grant is not installed when a newer one arrived while
	// the Escalator ran.
	err       error
	installed bool
}

// escalationCall is what a Transport asks of the source: a new
// authorization for the challenge key drawn by a request that carried
// generation sent.
type escalationCall struct {
	t    *Transport // whose Escalator runs, and whose policy and Logger apply
	key  challengeKey
	sent uint64
	// req is what the Escalator gets; the source fills in Scopes when the
	// escalation starts, from the grant then current.
	req *EscalationRequest
}

// curedBy reports whether a grant newer than the one the request carried,
// with the granted scopes, may cure the challenge: replaying with it costs
// one request, asking again costs a person's time. Only a scope challenge
// says what it needs; for any other, a newer token is worth a try.
func (c *escalationCall) curedBy(granted Scopes) bool {
	if c.req.Reason == ReasonInsufficientScope && len(c.req.ChallengedScopes) > 0 {
		return granted.ContainsAll(c.req.ChallengedScopes)
	}
	return true
}

// escalate obtains a grant that answers call's challenge. It returns
// escalated false and no error when a newer token may cure the challenge
// already, or arrived while the Escalator ran: replay with it. Otherwise
// it runs the Escalator, or waits for the escalation under way: when that
// one is for the same challenge, its outcome is the caller's too; when it
// is for another one, the caller looks again once it ends, since the new
// grant may cure its challenge, and starts an escalation of its own, for
// the union of the scopes of the new grant and its challenge, only if not.
// So a person sees one prompt at a time, and never one for scopes already
// granted.
//
// It fails with ctx's error if ctx ends first, or with the guard's or the
// escalation's error.
func (s *TokenSource) escalate(ctx context.Context, call *escalationCall) (escalated bool, err error) {
	for {
		if err := ctx.Err(); err != nil {
			return false, err // never start what nobody waits for
		}
		f, start, err := s.joinEscalation(call)
		if err != nil || f == nil {
			return false, err
		}
		if start {
			go s.runEscalation(ctx, f, call)
		} else {
			call.t.event(ctx, slog.LevelDebug, "stepup: waiting for an escalation in progress", slog.String("url", redactedURL(call.req.Request)))
		}
		select {
		case <-f.done:
		case <-ctx.Done():
			return false, ctx.Err()
		}
		if f.key == call.key {
			return f.installed, f.err
		}
	}
}

// joinEscalation returns the escalation to wait for, and whether the caller
// must start it, or nil when a newer token may cure the challenge, or the
// guard's reason to stop.
func (s *TokenSource) joinEscalation(call *escalationCall) (*escalation, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if cur := s.snap.Load(); cur.gen != call.sent && cur.tok != nil && call.curedBy(s.granted) {
		return nil, false, nil
	}
	if f := s.escalated; f != nil {
		return f, false, nil
	}
	accepted := call.sent != 0 && s.accepted.Load() >= call.sent
	if err := s.guard.blocked(call.key, call.sent, accepted, s.granted.sortedKey(), time.Now(), call.t.exhaustedTTL()); err != nil {
		return nil, false, err
	}
	call.req.Scopes = s.requested.Union(s.granted, call.req.ChallengedScopes)
	call.req.Issuer = s.issuer
	f := &escalation{key: call.key, grantSeq: s.grantSeq, done: make(chan struct{})}
	s.escalated = f
	return f, true, nil
}

// runEscalation runs the escalation f on a goroutine of its own, with the
// values of the starting caller's context but not its cancellation, as
// [Transport.EscalationTimeout] says. The flight
// is ended in a deferred call: a panic outside the Escalator (in a Logger,
// say) becomes an error, and a runtime.Goexit in the Escalator, which skips
// the rest, ends it with errFlightExited.
func (s *TokenSource) runEscalation(parent context.Context, f *escalation, call *escalationCall) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(parent), call.t.escalationTimeout())
	err := errFlightExited // unless escalateOnce returns
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("stepup: panic: %v", r)
		}
		cancel()
		s.endEscalation(ctx, f, call, err)
	}()
	err = s.escalateOnce(ctx, f, call)
}

// escalateOnce calls the Escalator and installs its grant. With a store,
// it runs alone across everyone sharing it, and takes the grant saved there
// instead when another source got one that may cure the challenge.
func (s *TokenSource) escalateOnce(ctx context.Context, f *escalation, call *escalationCall) error {
	return s.exclusive(ctx, func(ctx context.Context, saved *SavedGrant) (*SavedGrant, error) {
		if usable(saved) && saved.Token.Valid() && call.curedBy(saved.Granted) && s.adoptSaved(saved, call.req.RejectedToken) {
			f.installed = true
			return nil, nil
		}
		call.t.event(ctx, slog.LevelInfo, "stepup: escalation start", slog.Any("request", call.req))
		g, err := callEscalator(ctx, call.t.Escalator, call.req)
		if err != nil {
			return nil, err
		}
		if g == nil || g.Token == nil || g.Token.AccessToken == "" {
			return nil, errors.New("the Escalator returned no access token")
		}
		return s.installGrant(f, call, g), nil
	})
}

// installGrant installs the grant g of the escalation f and returns what the
// store keeps of it, or nil when a newer grant arrived while the Escalator
// ran (Set, say): an escalation never replaces a grant it did not see, and
// its waiters replay with that one.
func (s *TokenSource) installGrant(f *escalation, call *escalationCall, g *Grant) *SavedGrant {
	requested := call.req.Scopes
	if g.Scopes != nil {
		requested = g.Scopes
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.grantSeq != f.grantSeq {
		return nil
	}
	if g.Refresh != nil {
		s.refresh, s.goneGen = g.Refresh, 0
	}
	if g.Issuer != "" {
		s.issuer = g.Issuer
	}
	gen := s.installLocked(g.Token, requested, true)
	s.guard.escalated(f.key, gen, s.granted.sortedKey(), time.Now())
	f.installed = true
	return s.savedLocked()
}

// endEscalation ends the escalation f with err and tells its waiters.
func (s *TokenSource) endEscalation(ctx context.Context, f *escalation, call *escalationCall, err error) {
	if err != nil && ctx.Err() != nil && errors.Is(err, ctx.Err()) {
		err = fmt.Errorf("stepup: escalation timed out after %v: %w", call.t.escalationTimeout(), err)
	}
	s.mu.Lock()
	if errors.Is(err, ErrDeclined) {
		s.guard.declined(f.key, s.granted.sortedKey(), time.Now())
	}
	granted := s.granted.String()
	s.escalated = nil
	f.err = err
	close(f.done)
	s.mu.Unlock()

	attrs := []slog.Attr{slog.String("reason", call.req.Reason.String())}
	switch {
	case err == nil && !f.installed:
		attrs = append(attrs, slog.String("outcome", "dropped: a newer grant was installed meanwhile"))
	case err == nil:
		attrs = append(attrs, slog.String("outcome", "ok"), slog.String("granted", granted))
	case errors.Is(err, ErrDeclined):
		attrs = append(attrs, slog.String("outcome", "declined"), slog.String("error", redact(err.Error(), call.req.RejectedToken)))
	default:
		attrs = append(attrs, slog.String("outcome", "failed"), slog.String("error", redact(err.Error(), call.req.RejectedToken)))
	}
	call.t.event(ctx, slog.LevelInfo, "stepup: escalation end", attrs...)
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

// markSpent records that key came back right after its escalation, in the
// request that escalated it.
func (s *TokenSource) markSpent(key challengeKey) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.guard.spent(key, s.granted.sortedKey(), time.Now())
}
