package redisstore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/stepup-go/stepup/internal/backoff"
	"github.com/stepup-go/stepup/internal/grantrecord"
)

// The scripts run atomically in Redis. Each touches one key's entries,
// which share a hash slot.
var (
	// acquireScript takes the lock (KEYS[1]) for ARGV[1] = ttl ms with the
	// value ARGV[2], and returns {1, the saved record (KEYS[2]) or nil, or
	// 0 if it is over ARGV[3] bytes}, or, when another holds the lock,
	// {0, its remaining ttl in ms}: taking the lock and reading the grant
	// cost one round trip, and a record too large is never sent.
	acquireScript = redis.NewScript(`
if redis.call('SET', KEYS[1], ARGV[2], 'NX', 'PX', ARGV[1]) then
  if redis.call('STRLEN', KEYS[2]) > tonumber(ARGV[3]) then return {1, 0} end
  return {1, redis.call('GET', KEYS[2])}
end
return {0, redis.call('PTTL', KEYS[1])}`)

	// loadScript returns the saved record (KEYS[1]), nil if there is none,
	// or 0 if it is over ARGV[1] bytes.
	loadScript = redis.NewScript(`
if redis.call('STRLEN', KEYS[1]) > tonumber(ARGV[1]) then return 0 end
return redis.call('GET', KEYS[1])`)

	// renewScript extends the lock (KEYS[1]) to ARGV[1] ms if it still has
	// our value ARGV[2]; it returns 1 if so, 0 if the lock is lost.
	renewScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[2] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[1])
end
return 0`)

	// writeScript is the fenced save: it writes the record ARGV[4] (or
	// deletes the grant when ARGV[4] is empty) to KEYS[2] for ARGV[1] ms,
	// if the lock KEYS[1] still has our value ARGV[2], or if no one holds
	// the lock and the saved record is still ARGV[3], the one fn got
	// (empty for none). With ARGV[5] = '1' it then releases our lock and
	// publishes a notice on ARGV[6]. It returns 1 if it wrote, 0 if not.
	writeScript = redis.NewScript(`
local holder = redis.call('GET', KEYS[1])
if holder ~= ARGV[2] then
  if holder then return 0 end
  if (redis.call('GET', KEYS[2]) or '') ~= ARGV[3] then return 0 end
end
if ARGV[4] == '' then
  redis.call('DEL', KEYS[2])
else
  redis.call('SET', KEYS[2], ARGV[4], 'PX', ARGV[1])
end
if holder == ARGV[2] and ARGV[5] == '1' then
  redis.call('DEL', KEYS[1])
  redis.call('PUBLISH', ARGV[6], '')
end
return 1`)

	// releaseScript deletes the lock KEYS[1] if it still has our value
	// ARGV[1], and publishes a notice on ARGV[2].
	releaseScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  redis.call('PUBLISH', ARGV[2], '')
  return 1
end
return 0`)
)

// Waiting for a lock: a waiter tries again when a release notice comes,
// when the holder's lock expires, and otherwise with a backoff from 10 ms
// to 1 s, in case a notice was missed. A subscription is confirmed within
// subscribeTimeout or the wait fails.
const (
	waitMin          = 10 * time.Millisecond
	waitMax          = time.Second
	subscribeTimeout = 5 * time.Second
)

// hold is a lock an Update holds.
type hold struct {
	names
	value     string    // random: tells our lock from another's
	rec       []byte    // the saved record when the lock was taken, nil for none
	oversized bool      // the saved record is over grantrecord.MaxSize: not read
	until     time.Time // by when the lock expires at the latest, as last confirmed
}

// acquire takes key's lock, waiting until the holder releases it or its
// lock expires, or until ctx ends. It fails at once when Redis cannot be
// reached.
func (s *Store) acquire(ctx context.Context, n names) (*hold, error) {
	value, err := lockValue()
	if err != nil {
		return nil, err
	}
	h := &hold{names: n, value: value}
	// The first try's wait is not used: the loop below tries again
	// before it waits.
	got, _, err := s.tryAcquire(ctx, h)
	if err != nil {
		return nil, err
	}
	if got {
		return h, nil
	}
	// Subscribe before trying again, so that a release between the try
	// and the wait is not missed.
	sub := s.client.Subscribe(ctx, n.released)
	defer sub.Close()
	if _, err := sub.ReceiveTimeout(ctx, subscribeTimeout); err != nil {
		return nil, failure(ctx, "waiting for the lock", err)
	}
	notices := sub.Channel()
	poll := backoff.Backoff{Min: waitMin, Max: waitMax}
	for {
		got, wait, err := s.tryAcquire(ctx, h)
		if err != nil {
			return nil, err
		}
		if got {
			return h, nil
		}
		d := poll.Next()
		if wait > 0 && wait < d {
			d = wait
		}
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("redisstore: waiting for the lock: %w", context.Cause(ctx))
		case _, open := <-notices:
			if !open {
				notices = nil
			}
		case <-t.C:
		}
		t.Stop()
	}
}

// tryAcquire tries once to take h's lock. When another holds it, it
// returns how long until that lock expires.
func (s *Store) tryAcquire(ctx context.Context, h *hold) (got bool, wait time.Duration, err error) {
	sent := time.Now()
	if err := ctx.Err(); err != nil {
		return false, 0, fmt.Errorf("redisstore: waiting for the lock: %w", context.Cause(ctx))
	}
	res, err := acquireScript.Run(ctx, s.client, []string{h.lock, h.grant}, ms(s.lockTTL), h.value, grantrecord.MaxSize).Slice()
	if err != nil {
		return false, 0, failure(ctx, "taking the lock", err)
	}
	if len(res) != 2 {
		return false, 0, unavailable("taking the lock", fmt.Errorf("unexpected reply of %d elements", len(res)))
	}
	if n, _ := res[0].(int64); n != 1 {
		pttl, _ := res[1].(int64)
		return false, time.Duration(pttl)*time.Millisecond + time.Millisecond, nil
	}
	h.rec, h.oversized, err = record(res[1])
	if err != nil {
		return false, 0, unavailable("taking the lock", err)
	}
	h.until = sent.Add(s.lockTTL)
	return true, 0, nil
}

// keep renews h's lock every third of its TTL until stop is called. The
// returned ctx is cancelled, with ErrLockLost as its cause, when the lock
// is found lost, or when Redis could not confirm it before it would have
// expired.
func (s *Store) keep(ctx context.Context, h *hold) (fctx context.Context, stop func()) {
	fctx, cancel := context.WithCancelCause(ctx)
	done, exited := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(exited)
		if err := s.renew(ctx, h, done); err != nil {
			cancel(err)
		}
	}()
	return fctx, func() {
		close(done)
		<-exited
		cancel(context.Canceled)
	}
}

// renew renews h's lock until done is closed, and returns why it stopped
// early: the lock was lost.
func (s *Store) renew(ctx context.Context, h *hold, done <-chan struct{}) error {
	every := s.lockTTL / 3
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-done:
			return nil
		case <-t.C:
		}
		sent := time.Now()
		// Renewing goes on when the caller gives up, until fn returns:
		// fn must not lose the lock while it winds down.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), every)
		n, err := renewScript.Run(rctx, s.client, []string{h.lock}, ms(s.lockTTL), h.value).Int()
		cancel()
		switch {
		case err == nil && n == 1:
			h.until = sent.Add(s.lockTTL)
		case err == nil:
			return fmt.Errorf("%w: it expired or was taken", ErrLockLost)
		case !time.Now().Before(h.until):
			return fmt.Errorf("%w: it expired while Redis was unreachable: %w", ErrLockLost, unavailable("renewing the lock", err))
		}
	}
}

// write runs writeScript for h: it saves rec (deletes the grant when rec
// is nil) if the lock is still h's or, free, the saved record is still
// base; with release it then releases h's lock. It goes on when ctx has
// ended: a refreshed grant must not be lost because its caller gave up.
func (s *Store) write(ctx context.Context, h *hold, base, rec []byte, ttl time.Duration, release bool) (bool, error) {
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.lockTTL)
	defer cancel()
	rel := "0"
	if release {
		rel = "1"
	}
	n, err := writeScript.Run(wctx, s.client, []string{h.lock, h.grant}, ms(ttl), h.value, base, rec, rel, h.released).Int()
	return n == 1, err
}

// release releases h's lock if it is still h's. A release that fails
// leaves the lock to expire.
func (s *Store) release(ctx context.Context, h *hold) {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.lockTTL)
	defer cancel()
	_ = releaseScript.Run(rctx, s.client, []string{h.lock}, h.value, h.released).Err()
}

// record reads a record as acquireScript and loadScript return it.
func record(v any) (rec []byte, oversized bool, err error) {
	switch v := v.(type) {
	case string:
		return []byte(v), false, nil
	case nil:
		return nil, false, nil
	case int64:
		return nil, true, nil
	}
	return nil, false, fmt.Errorf("unexpected record of type %T", v)
}

// lockValue returns a random lock value, unique to one Update.
func lockValue() (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("redisstore: drawing a lock value: %w", err)
	}
	return hex.EncodeToString(b), nil
}

func ms(d time.Duration) string { return strconv.FormatInt(d.Milliseconds(), 10) }
