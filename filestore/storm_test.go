package filestore_test

import (
	"testing"

	"github.com/stepup-go/stepup/filestore"
	"github.com/stepup-go/stepup/internal/storetest"
)

// Two processes sharing the file store, 100 goroutines each, all hit 401
// invalid_token at once: one refresh reaches the token endpoint, which
// rotates the refresh token and would revoke the grant on a second use,
// and every request is answered with the new token.
func TestRefreshStorm(t *testing.T) {
	as := storetest.NewAuthServer(t)
	dir := privateDir(t)
	st := newStore(t, filestore.WithDir(dir))
	storetest.Save(t, st, as.Key(), as.Issue("read"))
	as.ExpireAccessToken()

	results := storetest.Storm(t, as, 2, 100, "/mcp/read", envDir+"="+dir)
	storetest.CheckStorm(t, as, results, 100, 1, 0)
}

// The same for a 403 insufficient_scope: one escalation across both
// processes, and no refresh.
func TestEscalationStorm(t *testing.T) {
	as := storetest.NewAuthServer(t)
	dir := privateDir(t)
	st := newStore(t, filestore.WithDir(dir))
	storetest.Save(t, st, as.Key(), as.Issue("read"))

	results := storetest.Storm(t, as, 2, 100, "/mcp/write", envDir+"="+dir)
	storetest.CheckStorm(t, as, results, 100, 0, 1)
}
