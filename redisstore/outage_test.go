package redisstore_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stepup-go/stepup"
	"github.com/stepup-go/stepup/internal/storetest"
	"github.com/stepup-go/stepup/redisstore"
)

// With Redis down the store fails closed: every operation returns
// ErrUnavailable at once, and no fn runs, so no refresh or escalation
// escapes the fleet's exclusion.
func TestRedisDownFailsClosed(t *testing.T) {
	f := newFixture(t)
	st := f.store()
	storetest.Save(t, st, storetest.Key, storetest.Grant("a1"))
	f.srv.Kill()

	_, err := st.Load(context.Background(), storetest.Key)
	require.ErrorIs(t, err, redisstore.ErrUnavailable)
	called := false
	err = st.Update(context.Background(), storetest.Key, func(context.Context, *stepup.SavedGrant) (*stepup.SavedGrant, error) {
		called = true
		return storetest.Grant("a2"), nil
	})
	require.ErrorIs(t, err, redisstore.ErrUnavailable)
	require.False(t, called)
	require.ErrorIs(t, st.Delete(context.Background(), storetest.Key), redisstore.ErrUnavailable)
	require.NotContains(t, err.Error(), "a1")
}

// A waiter for a lock held elsewhere returns ErrUnavailable when Redis
// dies, instead of waiting on.
func TestRedisDiesUnderAWaiter(t *testing.T) {
	f := newFixture(t)
	st := f.store()
	_, lock, released := redisstore.Names(st, storetest.Key)
	require.NoError(t, f.client.Set(context.Background(), lock, "another process", time.Minute).Err())
	done := make(chan error)
	go func() {
		done <- st.Update(context.Background(), storetest.Key, func(context.Context, *stepup.SavedGrant) (*stepup.SavedGrant, error) {
			return storetest.Grant("waiter"), nil
		})
	}()
	waitForSubscriber(t, f.client, released)
	f.srv.Kill()
	require.ErrorIs(t, <-done, redisstore.ErrUnavailable)
}

// Redis, with persistence, is killed while an Update's fn runs (a refresh
// that has spent the old refresh token): Update returns ErrUnavailable
// without hanging; while Redis is down the store fails closed; when Redis
// is back, the grant saved before the crash is there, and the process's
// next Update writes the refreshed grant before its fn runs, so the token
// is not lost. Had another process saved a grant meanwhile, that one
// would win.
func TestRedisKilledWhileFnRuns(t *testing.T) {
	for _, tc := range []struct {
		name  string
		other string // saved by another process once Redis is back, or ""
		want  string
	}{
		{name: "refreshed grant written back", want: "refreshed"},
		{name: "newer grant kept", other: "newer", want: "newer"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, "--appendonly", "yes", "--appendfsync", "always")
			st := f.store(redisstore.WithLockTTL(200 * time.Millisecond))
			storetest.Save(t, st, storetest.Key, storetest.Grant("old"))

			var cause error
			err := st.Update(context.Background(), storetest.Key, func(ctx context.Context, saved *stepup.SavedGrant) (*stepup.SavedGrant, error) {
				f.srv.Kill()
				<-ctx.Done() // the lock cannot be renewed before it expires
				cause = context.Cause(ctx)
				return storetest.Grant("refreshed"), nil
			})
			require.ErrorIs(t, err, redisstore.ErrUnavailable)
			require.ErrorIs(t, cause, redisstore.ErrLockLost)
			require.ErrorIs(t, cause, redisstore.ErrUnavailable)
			require.NotContains(t, err.Error(), "refreshed")

			_, err = st.Load(context.Background(), storetest.Key)
			require.ErrorIs(t, err, redisstore.ErrUnavailable)

			f.srv.Restart()
			elsewhere := redisstore.New(newClient(t, f.srv), redisstore.WithPrefix(f.prefix))
			storetest.RequireGrant(t, storetest.Grant("old"), storetest.Load(t, elsewhere, storetest.Key))
			if tc.other != "" {
				storetest.Save(t, elsewhere, storetest.Key, storetest.Grant(tc.other))
			}
			var seen *stepup.SavedGrant
			require.NoError(t, st.Update(context.Background(), storetest.Key, func(_ context.Context, saved *stepup.SavedGrant) (*stepup.SavedGrant, error) {
				seen = saved
				return nil, nil
			}))
			storetest.RequireGrant(t, storetest.Grant(tc.want), seen)
			storetest.RequireGrant(t, storetest.Grant(tc.want), storetest.Load(t, elsewhere, storetest.Key))
		})
	}
}
