package oauthclients

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

// The stepup rows are what grants.ClientCredentials promises: one token
// request at connection, one more for the 403 however many calls hit it,
// one for an expired token, never a refresh, every call through. The
// go-sdk rows are measured, not asserted; the table is logged (go test
// -v).
func TestClientCredentialsComparison(t *testing.T) {
	defer goleak.VerifyNone(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var results []*Result
	for _, srv := range Servers {
		for _, sc := range GrantScenarios {
			for _, client := range ClientCredentialsClients {
				r, err := RunClientCredentials(ctx, sc, srv, client)
				if errors.Is(err, ErrRacy) {
					t.Logf("%s, %s, %s: %v", sc.Name, srv.Name, client, err)
					continue
				}
				require.NoError(t, err)
				results = append(results, r)
				if client != StepupClientCredentials {
					continue
				}
				name := sc.Name + " / " + srv.Name
				assert.Equal(t, 2, r.Stats.TokenRequests["client_credentials"], name)
				assert.Equal(t, 0, r.Stats.Refreshes(), name)
				assert.Equal(t, r.Calls, r.OK, "%s: %v", name, r.FirstErr)
			}
		}
	}
	t.Log("\n" + ClientCredentialsTable(results))
}

// The stepup rows are what grants.Enterprise promises: one exchange and
// one JWT bearer request at connection, one more of each for the 403 for
// the union however many calls hit it, one of each for an expired token,
// never a refresh, every call through. The go-sdk rows are measured.
func TestEnterpriseComparison(t *testing.T) {
	defer goleak.VerifyNone(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var results []*EnterpriseResult
	for _, srv := range Servers {
		for _, sc := range GrantScenarios {
			for _, client := range EnterpriseClients {
				r, err := RunEnterprise(ctx, sc, srv, client)
				if errors.Is(err, ErrRacy) {
					t.Logf("%s, %s, %s: %v", sc.Name, srv.Name, client, err)
					continue
				}
				require.NoError(t, err)
				results = append(results, r)
				if client != StepupEnterprise {
					continue
				}
				name := sc.Name + " / " + srv.Name
				assert.Equal(t, 2, r.Exchanges, name)
				assert.Equal(t, 2, r.Stats.TokenRequests["urn:ietf:params:oauth:grant-type:jwt-bearer"], name)
				assert.Equal(t, 0, r.Stats.Refreshes(), name)
				assert.Equal(t, r.Calls, r.OK, "%s: %v", name, r.FirstErr)
			}
		}
	}
	t.Log("\n" + EnterpriseTable(results))
}
