package oauthclients

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

// The comparison's stepup rows are what stepup promises: one consent for
// the login and one for the step-up however many calls hit the 403, no
// refresh for a 403, every call through. The go-sdk rows are measured,
// not asserted; the table is logged (go test -v).
func TestComparison(t *testing.T) {
	defer goleak.VerifyNone(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var results []*Result
	for _, srv := range Servers {
		for _, sc := range Scenarios {
			for _, client := range Clients {
				r, err := Run(ctx, sc, srv, client)
				require.NoError(t, err)
				results = append(results, r)
				if client != Stepup {
					continue
				}
				name := sc.Name + " / " + srv.Name
				assert.Equal(t, 2, r.Stats.ConsentPrompts, name)
				assert.Equal(t, 2, r.Stats.CodeExchanges(), name)
				assert.Equal(t, 0, r.Stats.Refreshes(), name)
				assert.Equal(t, r.Calls, r.OK, "%s: %v", name, r.FirstErr)
			}
		}
	}
	t.Log("\n" + Table(results))
}
