// Package backoff spaces out the tries of a waiter that polls: a lock file
// held by another process, a Redis lock whose release went unnoticed.
package backoff

import (
	"context"
	"math/rand/v2"
	"time"
)

// Backoff is an exponential backoff with jitter: the n-th wait is drawn
// from [d/2, d) where d = Min·2ⁿ, capped at Max. The jitter keeps waiters
// that started together from trying together again. The zero value waits
// from 1 ms up to 1 s.
type Backoff struct {
	Min, Max time.Duration
	next     time.Duration
}

// Next returns the next wait.
func (b *Backoff) Next() time.Duration {
	lo, hi := b.Min, b.Max
	if lo <= 0 {
		lo = time.Millisecond
	}
	if hi < lo {
		hi = max(lo, time.Second)
	}
	d := b.next
	if d < lo {
		d = lo
	}
	b.next = min(2*d, hi)
	return d/2 + rand.N(d/2+1)
}

// Sleep waits for d or until ctx ends, and returns ctx's error in the
// second case.
func Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
