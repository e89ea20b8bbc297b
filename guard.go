package stepup

import (
	"crypto/sha256"
	"strings"
	"time"
)

// challengeKey identifies a challenge for the guard: the same demand from the
// same resource has the same key whatever the header's text, parameter
// order, case of names or error_description.
type challengeKey struct {
	origin string
	scheme string // lower case
	code   string // the challenge's own error code, "" when it has none
	scope  string // sorted scope set
	acr    string
	maxAge int
	claims [sha256.Size]byte
}

// newChallengeKey returns the key of oc, a challenge of the resource at
// origin. It depends on the response alone, never on the request: the code
// the Transport acts on for a challenge without error depends on whether a
// token was sent, so keyed by that, the same bare 401 would look new once
// the remedy had supplied a token, and be remedied again.
func newChallengeKey(origin string, oc *OAuthChallenge) challengeKey {
	k := challengeKey{
		origin: origin,
		scheme: strings.ToLower(oc.Scheme),
		code:   oc.Error,
		scope:  oc.Scope.sortedKey(),
		acr:    strings.Join(oc.ACRValues, " "),
		maxAge: oc.MaxAge,
	}
	if oc.Claims != nil {
		k.claims = sha256.Sum256(oc.Claims)
	}
	return k
}

// memo is what the guard remembers about a challenge across requests.
type memo struct {
	gen      uint64    // generation the last successful escalation produced
	granted  string    // granted scopes when the entry was made (sorted)
	at       time.Time // when the entry was made
	declined bool      // the user refused
	spent    bool      // the challenge came back after its escalation
}

// maxMemos bounds the guard's memory, which a server sending ever-new
// challenges could otherwise grow.
const maxMemos = 256

// guard remembers escalations across requests, so that a person is not
// asked in a loop (MCP authorization, "Scope Minimization": cache recent
// failures): a challenge that came straight back after its escalation, and
// a declined one, are not escalated again until the granted scopes change
// or the TTL passes. It lives on the [TokenSource] and is guarded by its
// mutex: every Transport sharing the source shares its memory.
type guard struct {
	memos map[challengeKey]memo
}

// blocked returns why key must not be escalated for a request that carried
// generation sent while granted are the granted scopes, or nil. accepted
// says whether the resource took generation sent at least once.
func (g *guard) blocked(key challengeKey, sent uint64, accepted bool, granted string, now time.Time, ttl time.Duration) error {
	m, ok := g.memos[key]
	if !ok {
		return nil
	}
	if now.Sub(m.at) > ttl {
		delete(g.memos, key)
		return nil
	}
	switch {
	case m.gen != 0 && m.gen == sent && !accepted:
		// The token this challenge's escalation produced drew the same
		// challenge straight away: escalating again cannot help. (Once
		// the resource has taken the token, the same challenge says it
		// expired: a 401 without error code is one challenge for "log in"
		// and "log in again".)
		m.spent, m.granted = true, granted
		g.memos[key] = m
		return ErrExhausted
	case m.granted != granted:
		return nil
	case m.declined:
		return errDeclinedEarlier
	case m.spent:
		return ErrExhausted
	}
	return nil
}

// errDeclinedEarlier is the cause of a [ChallengeError] for a challenge the
// user declined on an earlier request.
var errDeclinedEarlier = &declinedEarlier{}

type declinedEarlier struct{}

func (*declinedEarlier) Error() string   { return "declined earlier; not asking again yet" }
func (*declinedEarlier) Is(t error) bool { return t == ErrDeclined }

// escalated records that key's escalation produced generation gen.
func (g *guard) escalated(key challengeKey, gen uint64, granted string, now time.Time) {
	g.put(key, memo{gen: gen, granted: granted, at: now})
}

// declined records that key's escalation was refused.
func (g *guard) declined(key challengeKey, granted string, now time.Time) {
	g.put(key, memo{granted: granted, at: now, declined: true})
}

// spent records that key came back right after its escalation.
func (g *guard) spent(key challengeKey, granted string, now time.Time) {
	m := g.memos[key]
	m.spent, m.granted, m.at = true, granted, now
	g.put(key, m)
}

func (g *guard) put(key challengeKey, m memo) {
	if g.memos == nil {
		g.memos = make(map[challengeKey]memo)
	}
	if _, ok := g.memos[key]; !ok && len(g.memos) >= maxMemos {
		g.evictOldest()
	}
	g.memos[key] = m
}

func (g *guard) evictOldest() {
	var oldest challengeKey
	var first time.Time
	for k, m := range g.memos {
		if first.IsZero() || m.at.Before(first) {
			oldest, first = k, m.at
		}
	}
	delete(g.memos, oldest)
}

// markSpent records that key came back right after its escalation, in the
// request that escalated it.
func (s *TokenSource) markSpent(key challengeKey) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.guard.spent(key, s.granted.sortedKey(), time.Now())
}
