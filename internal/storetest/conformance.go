// Package storetest tests [stepup.Store] implementations with real parts:
// the behaviour the Store contract asks of every store, child processes
// sharing a store (the test binary run again, see [Main]), and storms of
// requests through stepup's TokenSource against an [AuthServer] that
// rotates refresh tokens and revokes a grant whose refresh token is used
// twice.
package storetest

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"

	"github.com/stepup-go/stepup"
	"github.com/stepup-go/stepup/internal/grantrecord"
)

// Backing makes a fresh, empty place for grants (a folder, a Redis key
// prefix) and returns how to open a store on it; stores opened by one
// Backing share their grants.
type Backing func(t *testing.T) (open func() stepup.Store)

// Key is the key the tests use unless they need several.
var Key = stepup.StoreKey{Resource: "https://mcp.example.com/mcp", Issuer: "https://as.example.com"}

// Grant returns a grant whose token is access, with every field set.
func Grant(access string) *stepup.SavedGrant {
	return &stepup.SavedGrant{
		Token: &oauth2.Token{
			AccessToken:  access,
			TokenType:    "Bearer",
			RefreshToken: "refresh-" + access,
			Expiry:       time.Date(2031, 5, 6, 7, 8, 9, 0, time.UTC),
		},
		Requested: stepup.Scopes{"files:read", "files:write"},
		Granted:   stepup.Scopes{"files:read"},
		Issuer:    "https://as.example.com",
	}
}

// NewAEAD returns AES-256-GCM under a random key.
func NewAEAD(t testing.TB) cipher.AEAD {
	t.Helper()
	key := make([]byte, 32)
	_, err := rand.Read(key)
	require.NoError(t, err)
	block, err := aes.NewCipher(key)
	require.NoError(t, err)
	aead, err := cipher.NewGCM(block)
	require.NoError(t, err)
	return aead
}

// RequireGrant fails the test unless got is want, field by field.
func RequireGrant(t testing.TB, want, got *stepup.SavedGrant) {
	t.Helper()
	if want == nil {
		require.Nil(t, got)
		return
	}
	require.NotNil(t, got)
	require.NotNil(t, got.Token)
	assert.Equal(t, want.Token.AccessToken, got.Token.AccessToken)
	assert.Equal(t, want.Token.TokenType, got.Token.TokenType)
	assert.Equal(t, want.Token.RefreshToken, got.Token.RefreshToken)
	assert.True(t, want.Token.Expiry.Equal(got.Token.Expiry), "expiry %v, want %v", got.Token.Expiry, want.Token.Expiry)
	assert.Equal(t, want.Requested, got.Requested)
	assert.Equal(t, want.Granted, got.Granted)
	assert.Equal(t, want.Issuer, got.Issuer)
}

// RequireCorrupt requires err to be the stores' ErrCorrupt, and its
// message to hold none of secrets.
func RequireCorrupt(t testing.TB, err error, secrets ...string) {
	t.Helper()
	require.ErrorIs(t, err, grantrecord.ErrCorrupt)
	for _, s := range secrets {
		require.NotContains(t, err.Error(), s)
	}
}

// RequireUnusable requires the record under key to be refused as corrupt
// by Load and by Update, which must not call fn, with errors holding none
// of secrets; and Delete to clear it.
func RequireUnusable(t testing.TB, st stepup.Store, key stepup.StoreKey, secrets ...string) {
	t.Helper()
	_, err := st.Load(context.Background(), key)
	RequireCorrupt(t, err, secrets...)
	called := false
	err = st.Update(context.Background(), key, func(context.Context, *stepup.SavedGrant) (*stepup.SavedGrant, error) {
		called = true
		return nil, nil
	})
	RequireCorrupt(t, err, secrets...)
	require.False(t, called, "fn ran on a corrupt record")
	require.NoError(t, st.Delete(context.Background(), key), "Delete clears a corrupt record")
	RequireGrant(t, nil, Load(t, st, key))
}

// Save saves g under key with an Update that must succeed.
func Save(t testing.TB, st stepup.Store, key stepup.StoreKey, g *stepup.SavedGrant) {
	t.Helper()
	require.NoError(t, st.Update(context.Background(), key, func(context.Context, *stepup.SavedGrant) (*stepup.SavedGrant, error) {
		return g, nil
	}))
}

// Load loads key's grant, which must not fail.
func Load(t testing.TB, st stepup.Store, key stepup.StoreKey) *stepup.SavedGrant {
	t.Helper()
	g, err := st.Load(context.Background(), key)
	require.NoError(t, err)
	return g
}

// Conformance checks what the [stepup.Store] contract asks of every store.
func Conformance(t *testing.T, backing Backing) {
	ctx := context.Background()

	t.Run("LoadWithoutGrant", func(t *testing.T) {
		st := backing(t)()
		RequireGrant(t, nil, Load(t, st, Key))
	})

	t.Run("SavedGrantRoundTrips", func(t *testing.T) {
		open := backing(t)
		Save(t, open(), Key, Grant("a1"))
		RequireGrant(t, Grant("a1"), Load(t, open(), Key))
	})

	t.Run("UpdateGetsTheSavedGrant", func(t *testing.T) {
		st := backing(t)()
		var seen []*stepup.SavedGrant
		for _, access := range []string{"a1", "a2"} {
			require.NoError(t, st.Update(ctx, Key, func(_ context.Context, saved *stepup.SavedGrant) (*stepup.SavedGrant, error) {
				seen = append(seen, saved)
				return Grant(access), nil
			}))
		}
		RequireGrant(t, nil, seen[0])
		RequireGrant(t, Grant("a1"), seen[1])
		RequireGrant(t, Grant("a2"), Load(t, st, Key))
	})

	t.Run("NilLeavesTheSavedGrant", func(t *testing.T) {
		st := backing(t)()
		Save(t, st, Key, Grant("a1"))
		require.NoError(t, st.Update(ctx, Key, func(context.Context, *stepup.SavedGrant) (*stepup.SavedGrant, error) {
			return nil, nil
		}))
		RequireGrant(t, Grant("a1"), Load(t, st, Key))
	})

	t.Run("ErrorSavesNothing", func(t *testing.T) {
		st := backing(t)()
		Save(t, st, Key, Grant("a1"))
		boom := errors.New("boom")
		err := st.Update(ctx, Key, func(context.Context, *stepup.SavedGrant) (*stepup.SavedGrant, error) {
			return Grant("a2"), boom
		})
		require.ErrorIs(t, err, boom)
		RequireGrant(t, Grant("a1"), Load(t, st, Key))
	})

	t.Run("GrantWithoutAccessTokenRefused", func(t *testing.T) {
		st := backing(t)()
		Save(t, st, Key, Grant("a1"))
		for _, g := range []*stepup.SavedGrant{{}, {Token: &oauth2.Token{RefreshToken: "r"}}} {
			err := st.Update(ctx, Key, func(context.Context, *stepup.SavedGrant) (*stepup.SavedGrant, error) { return g, nil })
			require.Error(t, err)
		}
		RequireGrant(t, Grant("a1"), Load(t, st, Key))
	})

	t.Run("KeysApart", func(t *testing.T) {
		st := backing(t)()
		keys := []stepup.StoreKey{
			{Resource: "https://mcp.example.com/mcp"},
			{Resource: "https://mcp.example.com/mcp", Issuer: "https://as.example.com"},
			{Resource: "https://mcp.example.com/mcp2"},
			// The same bytes split otherwise between the fields.
			{Resource: "https://mcp.example.com/mcp2", Issuer: "x"},
			{Resource: "https://mcp.example.com/mcp2x"},
		}
		for i, k := range keys {
			Save(t, st, k, Grant("a"+strconv.Itoa(i)))
		}
		require.NoError(t, st.Delete(ctx, keys[0]))
		RequireGrant(t, nil, Load(t, st, keys[0]))
		for i, k := range keys[1:] {
			RequireGrant(t, Grant("a"+strconv.Itoa(i+1)), Load(t, st, k))
		}
	})

	t.Run("Delete", func(t *testing.T) {
		st := backing(t)()
		require.NoError(t, st.Delete(ctx, Key), "deleting what is not there")
		Save(t, st, Key, Grant("a1"))
		require.NoError(t, st.Delete(ctx, Key))
		RequireGrant(t, nil, Load(t, st, Key))
	})

	t.Run("ExclusiveAcrossGoroutinesAndStores", func(t *testing.T) {
		open := backing(t)
		stores := []stepup.Store{open(), open(), open()}
		const goroutines, updates = 9, 20
		var inside, overlaps atomic.Int32
		var wg sync.WaitGroup
		for i := range goroutines {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range updates {
					assert.NoError(t, Increment(ctx, stores[i%len(stores)], Key, func() {
						if inside.Add(1) != 1 {
							overlaps.Add(1)
						}
						runtime.Gosched()
						inside.Add(-1)
					}))
				}
			}()
		}
		wg.Wait()
		require.Zero(t, overlaps.Load(), "Updates overlapped")
		require.Equal(t, goroutines*updates, Count(t, open(), Key))
	})

	t.Run("WaiterHonoursItsContext", func(t *testing.T) {
		open := backing(t)
		holder := open()
		for name, waiter := range map[string]stepup.Store{"same store": holder, "another store": open()} {
			entered, release, done := make(chan struct{}), make(chan struct{}), make(chan error)
			go func() {
				done <- holder.Update(ctx, Key, func(context.Context, *stepup.SavedGrant) (*stepup.SavedGrant, error) {
					close(entered)
					<-release
					return Grant("held"), nil
				})
			}()
			<-entered
			wctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
			called := false
			err := waiter.Update(wctx, Key, func(context.Context, *stepup.SavedGrant) (*stepup.SavedGrant, error) {
				called = true
				return Grant("waiter"), nil
			})
			cancel()
			require.ErrorIs(t, err, context.DeadlineExceeded, name)
			require.False(t, called, name)
			close(release)
			require.NoError(t, <-done, name)
			RequireGrant(t, Grant("held"), Load(t, waiter, Key))
		}
	})

	t.Run("EndedContext", func(t *testing.T) {
		st := backing(t)()
		ended, cancel := context.WithCancel(ctx)
		cancel()
		called := false
		err := st.Update(ended, Key, func(context.Context, *stepup.SavedGrant) (*stepup.SavedGrant, error) {
			called = true
			return Grant("a1"), nil
		})
		require.ErrorIs(t, err, context.Canceled)
		require.False(t, called)
		_, err = st.Load(ended, Key)
		require.ErrorIs(t, err, context.Canceled)
	})

	t.Run("PanicReleasesTheLock", func(t *testing.T) {
		st := backing(t)()
		func() {
			defer func() { require.Equal(t, "boom", recover()) }()
			_ = st.Update(ctx, Key, func(context.Context, *stepup.SavedGrant) (*stepup.SavedGrant, error) { panic("boom") })
		}()
		wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		require.NoError(t, st.Update(wctx, Key, func(context.Context, *stepup.SavedGrant) (*stepup.SavedGrant, error) {
			return Grant("after"), nil
		}))
	})
}

// Increment adds one to the counter kept in key's access token ("n-5"),
// calling during, if not nil, inside the Update.
func Increment(ctx context.Context, st stepup.Store, key stepup.StoreKey, during func()) error {
	return st.Update(ctx, key, func(_ context.Context, saved *stepup.SavedGrant) (*stepup.SavedGrant, error) {
		n := 0
		if saved != nil {
			var err error
			if n, err = strconv.Atoi(strings.TrimPrefix(saved.Token.AccessToken, "n-")); err != nil {
				return nil, err
			}
		}
		if during != nil {
			during()
		}
		return Grant("n-" + strconv.Itoa(n+1)), nil
	})
}

// Count returns the counter Increment keeps.
func Count(t testing.TB, st stepup.Store, key stepup.StoreKey) int {
	t.Helper()
	g := Load(t, st, key)
	if g == nil {
		return 0
	}
	n, err := strconv.Atoi(strings.TrimPrefix(g.Token.AccessToken, "n-"))
	require.NoError(t, err)
	return n
}

// The environment of an increment child.
const envIncrements = "STEPUP_STORETEST_INCREMENTS"

// Increments has procs child processes increment Key's counter updates
// times each, all starting together, and returns when they are done.
func Increments(t *testing.T, procs, updates int, env ...string) {
	t.Helper()
	env = append(env, envIncrements+"="+strconv.Itoa(updates))
	for _, c := range StartTogether(t, procs, "increment", env...) {
		c.Expect("done")
		c.Wait()
	}
}

// incrementRole increments Key's counter as often as the parent says.
func incrementRole(ctx context.Context, c *Child) error {
	n, err := strconv.Atoi(os.Getenv(envIncrements))
	if err != nil {
		return fmt.Errorf("%s: %w", envIncrements, err)
	}
	c.Say("ready")
	if err := c.Await("go"); err != nil {
		return err
	}
	for range n {
		if err := Increment(ctx, c.Store, Key, nil); err != nil {
			return err
		}
	}
	c.Say("done")
	return nil
}
