// Package keylock gives mutual exclusion per key inside one process, with
// waiters that honour their context. The stores take it before their
// cross-process lock, so that the goroutines of one process queue here
// instead of polling a file lock or Redis each.
package keylock

import (
	"context"
	"sync"
)

// Set holds one lock per key. The zero value is ready to use; a Set must
// not be copied after first use. Locks of keys nobody holds or waits for
// are forgotten.
type Set struct {
	mu    sync.Mutex
	locks map[string]*lock
}

type lock struct {
	held chan struct{} // one slot: full while the lock is held
	refs int           // holders and waiters, guarded by Set.mu
}

// Lock waits until it holds key's lock or ctx ends, whichever comes first,
// and returns the function that releases it (call it once), or ctx's
// error. A ctx that has ended already never gets the lock.
func (s *Set) Lock(ctx context.Context, key string) (unlock func(), err error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	l := s.ref(key)
	select {
	case l.held <- struct{}{}:
		return func() {
			<-l.held
			s.unref(key, l)
		}, nil
	case <-ctx.Done():
		s.unref(key, l)
		return nil, ctx.Err()
	}
}

func (s *Set) ref(key string) *lock {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.locks == nil {
		s.locks = make(map[string]*lock)
	}
	l := s.locks[key]
	if l == nil {
		l = &lock{held: make(chan struct{}, 1)}
		s.locks[key] = l
	}
	l.refs++
	return l
}

func (s *Set) unref(key string, l *lock) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if l.refs--; l.refs == 0 {
		delete(s.locks, key)
	}
}
