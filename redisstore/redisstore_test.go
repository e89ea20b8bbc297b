package redisstore_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"golang.org/x/oauth2"

	"github.com/stepup-go/stepup"
	"github.com/stepup-go/stepup/internal/storetest"
	"github.com/stepup-go/stepup/redisstore"
)

// What a child process needs to open the store its parent uses.
const (
	envAddr    = "STEPUP_REDISSTORE_TEST_ADDR"
	envPrefix  = "STEPUP_REDISSTORE_TEST_PREFIX"
	envLockTTL = "STEPUP_REDISSTORE_TEST_LOCK_TTL"
)

func TestMain(m *testing.M) {
	storetest.Main(func() (stepup.Store, error) {
		opts := []redisstore.Option{redisstore.WithPrefix(os.Getenv(envPrefix))}
		if ttl := os.Getenv(envLockTTL); ttl != "" {
			d, err := time.ParseDuration(ttl)
			if err != nil {
				return nil, err
			}
			opts = append(opts, redisstore.WithLockTTL(d))
		}
		return redisstore.New(redis.NewClient(&redis.Options{Addr: os.Getenv(envAddr)}), opts...), nil
	}, childRoles)
	goleak.VerifyTestMain(m)
}

// fixture is a Redis server, a client of it and a fresh key prefix.
type fixture struct {
	srv    *redisServer
	client *redis.Client
	prefix string
}

func newFixture(t testing.TB, redisArgs ...string) *fixture {
	srv := startRedis(t, redisArgs...)
	return &fixture{srv: srv, client: newClient(t, srv), prefix: randomPrefix(t)}
}

// newClient returns a client of srv, closed when the test ends.
func newClient(t testing.TB, srv *redisServer) *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: srv.addr})
	t.Cleanup(func() { c.Close() })
	return c
}

func randomPrefix(t testing.TB) string {
	b := make([]byte, 6)
	_, err := rand.Read(b)
	require.NoError(t, err)
	return "test" + hex.EncodeToString(b) + ":"
}

// store returns a store on the fixture's server and prefix.
func (f *fixture) store(opts ...redisstore.Option) *redisstore.Store {
	return redisstore.New(f.client, append([]redisstore.Option{redisstore.WithPrefix(f.prefix)}, opts...)...)
}

// env is what a child process needs to open a store like f's.
func (f *fixture) env(lockTTL time.Duration) []string {
	env := []string{envAddr + "=" + f.srv.addr, envPrefix + "=" + f.prefix}
	if lockTTL > 0 {
		env = append(env, envLockTTL+"="+lockTTL.String())
	}
	return env
}

// backing gives each test a fresh prefix on one server.
func backing(srv *redisServer, opts ...redisstore.Option) storetest.Backing {
	return func(t *testing.T) func() stepup.Store {
		client, prefix := newClient(t, srv), randomPrefix(t)
		return func() stepup.Store {
			return redisstore.New(client, append([]redisstore.Option{redisstore.WithPrefix(prefix)}, opts...)...)
		}
	}
}

func TestConformance(t *testing.T) {
	storetest.Conformance(t, backing(startRedis(t)))
}

func TestConformanceSealed(t *testing.T) {
	storetest.Conformance(t, backing(startRedis(t), redisstore.WithAEAD(storetest.NewAEAD(t))))
}

// Four processes increment one counter 25 times each: any Update that ran
// beside another would lose an increment.
func TestExclusiveAcrossProcesses(t *testing.T) {
	f := newFixture(t)
	storetest.Increments(t, 4, 25, f.env(0)...)
	require.Equal(t, 100, storetest.Count(t, f.store(), storetest.Key))
}

// Keys are a hash under the prefix, never the resource URL; a grant with
// a refresh token is kept for the retention, one without until its access
// token expires.
func TestRecordsExpire(t *testing.T) {
	f := newFixture(t)
	st := f.store(redisstore.WithRetention(48 * time.Hour))
	storetest.Save(t, st, storetest.Key, storetest.Grant("a1"))
	grant, _, _ := redisstore.Names(st, storetest.Key)
	require.Regexp(t, `^`+f.prefix+`\{[0-9a-f]{64}\}:grant$`, grant)
	keys, err := f.client.Keys(context.Background(), "*").Result()
	require.NoError(t, err)
	require.Equal(t, []string{grant}, keys, "the lock is gone after Update")
	requireTTL(t, f.client, grant, 47*time.Hour, 48*time.Hour)

	g := storetest.Grant("short")
	g.Token.RefreshToken = ""
	g.Token.Expiry = time.Now().Add(time.Hour)
	storetest.Save(t, st, storetest.Key, g)
	requireTTL(t, f.client, grant, 59*time.Minute, time.Hour)

	g.Token.Expiry = time.Time{} // unknown: kept for the retention
	storetest.Save(t, st, storetest.Key, g)
	requireTTL(t, f.client, grant, 47*time.Hour, 48*time.Hour)

	storetest.Save(t, f.store(), storetest.Key, storetest.Grant("a1"))
	requireTTL(t, f.client, grant, redisstore.DefaultRetention-time.Hour, redisstore.DefaultRetention)
}

func requireTTL(t *testing.T, c *redis.Client, key string, lo, hi time.Duration) {
	t.Helper()
	ttl, err := c.PTTL(context.Background(), key).Result()
	require.NoError(t, err)
	require.True(t, ttl > lo && ttl <= hi, "TTL %v not in (%v, %v]", ttl, lo, hi)
}

// A lock whose holder died without releasing it is taken when it
// expires: waiters wake at its expiry, not at the next backoff step.
func TestDeadHoldersLockExpires(t *testing.T) {
	f := newFixture(t)
	st := f.store()
	_, lock, _ := redisstore.Names(st, storetest.Key)
	require.NoError(t, f.client.Set(context.Background(), lock, "dead holder", 300*time.Millisecond).Err())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, st.Update(ctx, storetest.Key, func(context.Context, *stepup.SavedGrant) (*stepup.SavedGrant, error) {
		return storetest.Grant("a1"), nil
	}))
}

// When the lock is lost while fn runs, fn's ctx ends with ErrLockLost, and
// fn's grant is saved only if no one saved one meanwhile.
func TestLockLostWhileFnRuns(t *testing.T) {
	for _, tc := range []struct {
		name      string
		other     func(t *testing.T, f *fixture, grant, lock string) // what happens meanwhile
		wantErr   error
		wantSaved string
	}{{
		name: "taken by another, which saved a newer grant",
		other: func(t *testing.T, f *fixture, grant, lock string) {
			rec := recordOf(t, f, storetest.Grant("newer"))
			require.NoError(t, f.client.Set(context.Background(), lock, "another holder", time.Minute).Err())
			require.NoError(t, f.client.Set(context.Background(), grant, rec, time.Hour).Err())
		},
		wantErr:   redisstore.ErrLockLost,
		wantSaved: "newer",
	}, {
		name: "taken by another, still at work",
		other: func(t *testing.T, f *fixture, grant, lock string) {
			require.NoError(t, f.client.Set(context.Background(), lock, "another holder", time.Minute).Err())
		},
		wantErr:   redisstore.ErrLockLost,
		wantSaved: "old",
	}, {
		name: "expired, a newer grant saved since",
		other: func(t *testing.T, f *fixture, grant, lock string) {
			rec := recordOf(t, f, storetest.Grant("newer"))
			require.NoError(t, f.client.Del(context.Background(), lock).Err())
			require.NoError(t, f.client.Set(context.Background(), grant, rec, time.Hour).Err())
		},
		wantErr:   redisstore.ErrLockLost,
		wantSaved: "newer",
	}, {
		// A refreshed grant that contradicts no one is kept: its old
		// refresh token is spent.
		name: "expired, nothing saved since",
		other: func(t *testing.T, f *fixture, grant, lock string) {
			require.NoError(t, f.client.Del(context.Background(), lock).Err())
		},
		wantSaved: "late",
	}} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			st := f.store(redisstore.WithLockTTL(90 * time.Millisecond))
			storetest.Save(t, st, storetest.Key, storetest.Grant("old"))
			grant, lock, _ := redisstore.Names(st, storetest.Key)
			var cause error
			err := st.Update(context.Background(), storetest.Key, func(ctx context.Context, _ *stepup.SavedGrant) (*stepup.SavedGrant, error) {
				tc.other(t, f, grant, lock)
				<-ctx.Done() // the next renewal finds the lock lost
				cause = context.Cause(ctx)
				return storetest.Grant("late"), nil
			})
			require.ErrorIs(t, cause, redisstore.ErrLockLost)
			if tc.wantErr != nil {
				require.ErrorIs(t, err, tc.wantErr)
			} else {
				require.NoError(t, err)
			}
			storetest.RequireGrant(t, storetest.Grant(tc.wantSaved), storetest.Load(t, f.store(), storetest.Key))
		})
	}
}

// recordOf returns the record another store of f's would save for g.
func recordOf(t *testing.T, f *fixture, g *stepup.SavedGrant) string {
	scratch := &fixture{srv: f.srv, client: f.client, prefix: randomPrefix(t)}
	st := scratch.store()
	storetest.Save(t, st, storetest.Key, g)
	grant, _, _ := redisstore.Names(st, storetest.Key)
	rec, err := f.client.Get(context.Background(), grant).Result()
	require.NoError(t, err)
	return rec
}

// An Update whose ctx ends while it waits for the lock gives up at once;
// the holder's grant is saved.
func TestWaiterHonoursItsContextAcrossProcesses(t *testing.T) {
	f := newFixture(t)
	st := f.store()
	_, lock, released := redisstore.Names(st, storetest.Key)
	require.NoError(t, f.client.Set(context.Background(), lock, "another process", time.Minute).Err())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() {
		done <- st.Update(ctx, storetest.Key, func(context.Context, *stepup.SavedGrant) (*stepup.SavedGrant, error) {
			return storetest.Grant("waiter"), nil
		})
	}()
	waitForSubscriber(t, f.client, released)
	cancel()
	require.ErrorIs(t, <-done, context.Canceled)
	RequireNoGrant(t, f.store())
}

// RequireNoGrant requires st to hold no grant under the test key.
func RequireNoGrant(t *testing.T, st stepup.Store) {
	t.Helper()
	storetest.RequireGrant(t, nil, storetest.Load(t, st, storetest.Key))
}

// waitForSubscriber waits until someone listens on channel: a waiter for
// the lock.
func waitForSubscriber(t *testing.T, c *redis.Client, channel string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		n, err := c.PubSubNumSub(ctx, channel).Result()
		require.NoError(t, err)
		if n[channel] > 0 {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatal("no waiter subscribed")
		case <-time.After(time.Millisecond):
		}
	}
}

func TestSealedRecords(t *testing.T) {
	f := newFixture(t)
	aead := storetest.NewAEAD(t)
	st := f.store(redisstore.WithAEAD(aead))
	other := stepup.StoreKey{Resource: "https://other.example.com/mcp"}
	storetest.Save(t, st, storetest.Key, storetest.Grant("secret-a"))
	storetest.Save(t, st, other, storetest.Grant("secret-b"))
	grantA, _, _ := redisstore.Names(st, storetest.Key)
	grantB, _, _ := redisstore.Names(st, other)
	rec, err := f.client.Get(context.Background(), grantA).Bytes()
	require.NoError(t, err)
	for _, secret := range []string{"secret-a", "example.com"} {
		require.NotContains(t, string(rec), secret)
	}
	storetest.RequireGrant(t, storetest.Grant("secret-a"), storetest.Load(t, st, storetest.Key))

	// Moved to another key, a record does not open.
	require.NoError(t, f.client.Set(context.Background(), grantB, rec, time.Hour).Err())
	storetest.RequireUnusable(t, st, other, "secret-a", "secret-b")

	// Nor does one altered, one sealed with another AEAD key, or one in
	// the clear.
	altered := []byte(strings.Replace(string(rec), `"sealed":"A`, `"sealed":"B`, 1))
	if string(altered) == string(rec) {
		altered = []byte(strings.Replace(string(rec), `"sealed":"`, `"sealed":"A`, 1))
	}
	require.NoError(t, f.client.Set(context.Background(), grantB, altered, time.Hour).Err())
	_, err = st.Load(context.Background(), other)
	storetest.RequireCorrupt(t, err, "secret-a")
	_, err = f.store(redisstore.WithAEAD(storetest.NewAEAD(t))).Load(context.Background(), storetest.Key)
	storetest.RequireCorrupt(t, err, "secret-a")
	_, err = f.store().Load(context.Background(), storetest.Key)
	storetest.RequireCorrupt(t, err, "secret-a")
	clear := f.store(redisstore.WithPrefix(randomPrefix(t)))
	storetest.Save(t, clear, storetest.Key, storetest.Grant("planted"))
	_, err = redisstore.New(f.client, redisstore.WithPrefix(prefixOf(t, clear)), redisstore.WithAEAD(aead)).Load(context.Background(), storetest.Key)
	storetest.RequireCorrupt(t, err, "planted")
}

func prefixOf(t *testing.T, st *redisstore.Store) string {
	grant, _, _ := redisstore.Names(st, storetest.Key)
	i := strings.Index(grant, "{")
	require.Positive(t, i)
	return grant[:i]
}

// A grant without access token is never saved.
func TestEmptyGrantRefused(t *testing.T) {
	st := newFixture(t).store()
	err := st.Update(context.Background(), storetest.Key, func(context.Context, *stepup.SavedGrant) (*stepup.SavedGrant, error) {
		return &stepup.SavedGrant{Token: &oauth2.Token{}}, nil
	})
	require.Error(t, err)
	require.False(t, errors.Is(err, redisstore.ErrUnavailable))
}

// A record over 1 MiB is refused without being read.
func TestOversizedRecordRefused(t *testing.T) {
	f := newFixture(t)
	st := f.store()
	grant, _, _ := redisstore.Names(st, storetest.Key)
	require.NoError(t, f.client.Set(context.Background(), grant, strings.Repeat("x", 1<<20+1), time.Hour).Err())
	storetest.RequireUnusable(t, st, storetest.Key)
}
