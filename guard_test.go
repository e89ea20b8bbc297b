package stepup

import (
	"encoding/base64"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// recvWithin receives from c, failing the test if nothing comes within a
// generous bound: a regression then shows as a failure, not a hang.
func recvWithin[T any](t *testing.T, c <-chan T) T {
	t.Helper()
	select {
	case v := <-c:
		return v
	case <-time.After(30 * time.Second):
		t.Fatal("nothing received within 30s")
		panic("unreachable")
	}
}

func mustOAuth(t *testing.T, header string) OAuthChallenge {
	t.Helper()
	cs, err := ParseChallengeValues(header)
	require.NoError(t, err)
	require.Len(t, cs, 1)
	oc, err := cs[0].OAuth()
	require.NoError(t, err)
	return oc
}

// The guard's key ignores header text, parameter order, the case of names
// and error_description, and tells apart what a remedy depends on.
// Its error code is the challenge's own: a challenge without error has the
// same key whatever the Transport makes of it.
func TestChallengeKey(t *testing.T) {
	const origin = "https://mcp.example.com"
	claims := base64.StdEncoding.EncodeToString([]byte(`{"access_token":{"acrs":{"essential":true,"value":"cp1"}}}`))
	base := mustOAuth(t, `Bearer error="insufficient_scope", scope="b a", error_description="one"`)
	key := newChallengeKey(origin, &base)

	for _, same := range []string{
		`Bearer scope="a b", error="insufficient_scope"`,
		`BEARER SCOPE=" a  b ", ERROR=insufficient_scope, error_description="two", realm="x"`,
		`bearer error = "insufficient_scope" , scope="b a a"`,
	} {
		oc := mustOAuth(t, same)
		assert.Equal(t, key, newChallengeKey(origin, &oc), same)
	}
	for _, other := range []struct {
		header, origin string
	}{
		{`Bearer error="insufficient_scope", scope="a"`, origin},
		{`Bearer error="insufficient_scope", scope="a b c"`, origin},
		{`Bearer error="insufficient_scope", scope="a b"`, "https://other.example.com"},
		{`DPoP error="insufficient_scope", scope="a b"`, origin},
		{`Bearer error="insufficient_scope", scope="a b", acr_values="x"`, origin},
		{`Bearer error="insufficient_scope", scope="a b", max_age=0`, origin},
		{`Bearer error="insufficient_scope", scope="a b", claims="` + claims + `"`, origin},
		{`Bearer scope="a b"`, origin},
		{`Bearer error="invalid_token", scope="a b"`, origin},
	} {
		oc := mustOAuth(t, other.header)
		assert.NotEqual(t, key, newChallengeKey(other.origin, &oc), other.header)
	}
	// acr_values are ordered by preference: another order is another demand.
	x := mustOAuth(t, `Bearer error="insufficient_user_authentication", acr_values="a b"`)
	y := mustOAuth(t, `Bearer error="insufficient_user_authentication", acr_values="b a"`)
	assert.NotEqual(t, newChallengeKey(origin, &x), newChallengeKey(origin, &y))
	// A bare challenge keeps its empty code: a bare 401 answered with a
	// first authorization is the same challenge when it comes back.
	bare := mustOAuth(t, `Bearer realm="files"`)
	assert.Empty(t, newChallengeKey(origin, &bare).code)
}

func TestGuard(t *testing.T) {
	const ttl = time.Minute
	now := time.Now()
	k1 := challengeKey{origin: "https://a", code: ErrorInsufficientScope, scope: "admin"}
	k2 := challengeKey{origin: "https://a", code: ErrorInsufficientScope, scope: "write"}
	var g guard

	assert.NoError(t, g.blocked(k1, 1, false, "read", now, ttl), "unknown challenge")

	g.escalated(k1, 2, "read", now)
	assert.NoError(t, g.blocked(k1, 1, false, "read", now, ttl), "drawn by an older token: escalate")
	assert.ErrorIs(t, g.blocked(k1, 2, false, "read", now, ttl), ErrExhausted, "drawn by the token its escalation produced")
	g.escalated(k1, 2, "read", now)
	assert.NoError(t, g.blocked(k1, 2, true, "read", now, ttl), "drawn by that token after the resource took it: it expired")
	assert.ErrorIs(t, g.blocked(k1, 2, false, "read", now, ttl), ErrExhausted)
	assert.ErrorIs(t, g.blocked(k1, 3, false, "read", now, ttl), ErrExhausted, "spent while the grant stays")
	assert.NoError(t, g.blocked(k1, 3, false, "read write", now, ttl), "the grant changed")
	assert.NoError(t, g.blocked(k1, 3, false, "read", now.Add(ttl+time.Second), ttl), "lapsed")
	assert.NoError(t, g.blocked(k1, 3, false, "read", now, ttl), "a lapsed entry is gone")

	g.declined(k2, "read", now)
	assert.ErrorIs(t, g.blocked(k2, 5, false, "read", now, ttl), ErrDeclined)
	assert.NoError(t, g.blocked(k2, 5, false, "read admin", now, ttl))
	assert.ErrorIs(t, g.blocked(k2, 5, false, "read", now.Add(ttl/2), ttl), ErrDeclined)
	assert.NoError(t, g.blocked(k2, 5, false, "read", now.Add(ttl/2), ttl/4), "a shorter TTL applies at once")

	g.spent(k1, "read", now)
	assert.ErrorIs(t, g.blocked(k1, 9, false, "read", now, ttl), ErrExhausted)
}

// The guard's memory stays bounded whatever a server sends.
func TestGuardIsBounded(t *testing.T) {
	var g guard
	now := time.Now()
	for i := range 3 * maxMemos {
		g.declined(challengeKey{scope: fmt.Sprint("s", i)}, "", now.Add(time.Duration(i)))
	}
	assert.Len(t, g.memos, maxMemos)
	assert.Contains(t, g.memos, challengeKey{scope: fmt.Sprint("s", 3*maxMemos-1)}, "the newest is kept")
	assert.NotContains(t, g.memos, challengeKey{scope: "s0"}, "the oldest is dropped")
}
