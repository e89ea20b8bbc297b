package stepup

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// flightGroup runs one function at a time per key for all the goroutines
// asking for it, like golang.org/x/sync/singleflight, except that each
// caller waits with its own context, and the function runs on when every
// caller has stopped waiting, for up to timeout, with new callers joining
// it meanwhile. A refresh needs this: abandoned after the server rotated the
// refresh token, it would lose the new one, and a second refresh started
// beside it would reuse the old one.
type flightGroup[K comparable] struct {
	timeout time.Duration

	mu      sync.Mutex
	flights map[K]*flight
}

type flight struct {
	done chan struct{}
	err  error // set before done is closed
}

// do runs fn once for the concurrent callers with key and returns its
// error, or ctx's error if ctx ends first. fn runs on a goroutine of its
// own with a context that keeps the values of the first caller's ctx; a
// panic in it, or a runtime.Goexit, becomes an error.
func (g *flightGroup[K]) do(ctx context.Context, key K, fn func(context.Context) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	g.mu.Lock()
	f, ok := g.flights[key]
	if !ok {
		f = &flight{done: make(chan struct{})}
		if g.flights == nil {
			g.flights = make(map[K]*flight)
		}
		g.flights[key] = f
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), g.timeout)
		go g.run(fctx, cancel, key, f, fn)
	}
	g.mu.Unlock()

	select {
	case <-f.done:
		return f.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// run calls fn and ends the flight f with its result. fn runs user code on
// a goroutine of ours, so the flight is ended in a deferred call: a panic,
// which would take the program down, becomes an error, and a
// runtime.Goexit, which skips the rest of run, ends it with
// errFlightExited; either way the callers waiting for f are released.
func (g *flightGroup[K]) run(ctx context.Context, cancel context.CancelFunc, key K, f *flight, fn func(context.Context) error) {
	err := errFlightExited // unless fn returns
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("stepup: panic: %v", r)
		}
		cancel()
		g.mu.Lock()
		defer g.mu.Unlock()
		delete(g.flights, key)
		f.err = err
		close(f.done)
	}()
	err = fn(ctx)
}
