package keylock

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestExclusivePerKey(t *testing.T) {
	var s Set
	var inside [2]atomic.Int32
	var overlaps atomic.Int32
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			key := []string{"a", "b"}[i%2]
			for range 100 {
				unlock, err := s.Lock(context.Background(), key)
				if !assert.NoError(t, err) {
					return
				}
				if inside[i%2].Add(1) != 1 {
					overlaps.Add(1)
				}
				inside[i%2].Add(-1)
				unlock()
			}
		}()
	}
	wg.Wait()
	require.Zero(t, overlaps.Load())
	require.Empty(t, s.locks, "locks nobody holds are forgotten")
}

// Keys are independent: holding one never delays another.
func TestKeysIndependent(t *testing.T) {
	var s Set
	unlockA, err := s.Lock(context.Background(), "a")
	require.NoError(t, err)
	unlockB, err := s.Lock(context.Background(), "b")
	require.NoError(t, err)
	unlockB()
	unlockA()
}

func TestWaiterHonoursItsContext(t *testing.T) {
	var s Set
	unlock, err := s.Lock(context.Background(), "a")
	require.NoError(t, err)

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	_, err = s.Lock(ctx, "a")
	require.ErrorIs(t, err, context.DeadlineExceeded)

	ended, cancelEnded := context.WithCancel(context.Background())
	cancelEnded()
	unlock()
	_, err = s.Lock(ended, "a")
	require.ErrorIs(t, err, context.Canceled, "an ended context never gets the lock, even a free one")
	require.Empty(t, s.locks)
}

// A waiter gets the lock when the holder releases it.
func TestHandOver(t *testing.T) {
	var s Set
	unlock, err := s.Lock(context.Background(), "a")
	require.NoError(t, err)
	got := make(chan func())
	go func() {
		u, err := s.Lock(context.Background(), "a")
		assert.NoError(t, err)
		got <- u
	}()
	unlock()
	(<-got)()
	require.Empty(t, s.locks)
}
