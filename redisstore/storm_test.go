package redisstore_test

import (
	"testing"

	"github.com/stepup-go/stepup/internal/storetest"
)

// Four processes sharing Redis, 100 goroutines each, all hit 401
// invalid_token at once: exactly one refresh reaches the token endpoint,
// which rotates the refresh token and would revoke the grant on a second
// use, and every request is answered with the new token.
func TestRefreshStorm(t *testing.T) {
	f := newFixture(t)
	as := storetest.NewAuthServer(t)
	storetest.Save(t, f.store(), as.Key(), as.Issue("read"))
	as.ExpireAccessToken()

	results := storetest.Storm(t, as, 4, 100, "/mcp/read", f.env(0)...)
	storetest.CheckStorm(t, as, results, 100, 1, 0)
}

// The same for a 403 insufficient_scope: one escalation across the fleet,
// and no refresh.
func TestEscalationStorm(t *testing.T) {
	f := newFixture(t)
	as := storetest.NewAuthServer(t)
	storetest.Save(t, f.store(), as.Key(), as.Issue("read"))

	results := storetest.Storm(t, as, 4, 100, "/mcp/write", f.env(0)...)
	storetest.CheckStorm(t, as, results, 100, 0, 1)
}
