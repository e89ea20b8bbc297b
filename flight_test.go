package stepup

import (
	"context"
	"errors"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"go.uber.org/goleak"
)

// joins counts the callers that have joined a flight: do reads its
// caller's Done once, after joining the flight and right before blocking.
type joins struct{ n atomic.Int32 }

// ctx returns a context for one caller, counted by j once it has joined.
func (j *joins) ctx() context.Context { return joinCounted{context.Background(), j} }

// wait returns once n callers have joined. It yields rather than sleeps:
// the callers are goroutines about to block.
func (j *joins) wait(n int) {
	for j.n.Load() < int32(n) {
		runtime.Gosched()
	}
}

type joinCounted struct {
	context.Context
	j *joins
}

func (c joinCounted) Done() <-chan struct{} {
	c.j.n.Add(1)
	return c.Context.Done()
}

func TestFlightGroupSharesOneCall(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	g := flightGroup[string]{timeout: time.Minute}
	var calls atomic.Int32
	release := make(chan struct{})
	fn := func(context.Context) error {
		calls.Add(1)
		<-release
		return errors.New("shared")
	}
	const n = 50
	errs := make(chan error, n)
	var j joins
	for range n {
		go func() { errs <- g.do(j.ctx(), "k", fn) }()
	}
	j.wait(n)
	close(release)
	for range n {
		assert.EqualError(t, recvWithin(t, errs), "shared")
	}
	assert.Equal(t, int32(1), calls.Load())
	assert.Empty(t, g.flights)
}

// A flight runs on when its callers leave, bounded by the timeout and
// keeping the first caller's values, and new callers join it rather than
// start a second one beside it.
func TestFlightGroupOutlivesItsCallers(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	g := flightGroup[int]{timeout: time.Minute}
	var calls atomic.Int32
	started := make(chan context.Context, 1)
	release := make(chan struct{})
	fn := func(ctx context.Context) error {
		calls.Add(1)
		started <- ctx
		<-release
		return nil
	}
	type key struct{}
	ctx, cancel := context.WithCancel(context.WithValue(context.Background(), key{}, "v"))
	first := make(chan error, 1)
	go func() { first <- g.do(ctx, 1, fn) }()
	workCtx := recvWithin(t, started)
	cancel()
	assert.ErrorIs(t, recvWithin(t, first), context.Canceled)
	assert.NoError(t, workCtx.Err(), "nobody waits, yet the work goes on")
	assert.Equal(t, "v", workCtx.Value(key{}))
	deadline, ok := workCtx.Deadline()
	assert.True(t, ok, "a flight nobody waits for is bounded")
	assert.WithinDuration(t, time.Now().Add(time.Minute), deadline, 10*time.Second)

	second := make(chan error, 1)
	var j joins
	go func() { second <- g.do(j.ctx(), 1, fn) }()
	j.wait(1)
	close(release)
	assert.NoError(t, recvWithin(t, second))
	assert.Equal(t, int32(1), calls.Load())
}

func TestFlightGroupPanicAndCancelledCaller(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	g := flightGroup[string]{timeout: time.Minute}
	err := g.do(context.Background(), "k", func(context.Context) error { panic("boom") })
	assert.ErrorContains(t, err, "panic: boom")

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err = g.do(ctx, "k", func(context.Context) error {
		t.Error("a cancelled caller must not start a flight")
		return nil
	})
	assert.ErrorIs(t, err, context.Canceled)
}

// A function that ends its goroutine with runtime.Goexit (t.FailNow does)
// never returns, yet its flight ends: every caller gets errFlightExited,
// and the next caller starts afresh.
func TestFlightGroupGoexit(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	g := flightGroup[string]{timeout: time.Minute}
	release := make(chan struct{})
	fn := func(context.Context) error {
		<-release
		runtime.Goexit()
		return nil
	}
	errs := make(chan error, 2)
	var j joins
	for range 2 {
		go func() { errs <- g.do(j.ctx(), "k", fn) }()
	}
	j.wait(2)
	close(release)
	for range 2 {
		assert.ErrorIs(t, recvWithin(t, errs), errFlightExited)
	}
	g.mu.Lock()
	assert.Empty(t, g.flights)
	g.mu.Unlock()

	err := g.do(context.Background(), "k", func(context.Context) error { return nil })
	assert.NoError(t, err, "the next caller starts afresh")
}
