// Package redisstore keeps stepup grants in Redis: a [stepup.Store] for a
// fleet of processes acting for the same users, so that a rotating refresh
// token is redeemed once across the fleet and a person is asked to consent
// once.
//
// # Records
//
// Each key's grant is one Redis string, the record of the stepup stores
// (versioned JSON, sealed when [WithAEAD] is given), kept with an expiry:
// a grant with a refresh token for [WithRetention] (30 days by default)
// after it was last saved, a grant without one until its access token
// expires. Keys are named by a hash of the resource and issuer, never the
// URL, under a prefix ("stepup:" by default), with a hash tag so that a
// key's entries share a Redis Cluster slot.
//
// # The exclusive section
//
// [Store.Update] takes a lock (SET NX PX with a random value) for
// [WithLockTTL] (15 s by default) and renews it every third of that while
// fn runs, so an escalation can wait minutes for consent. Waiters in other
// processes are woken by a notice published on release, and try again
// with backoff in case a notice is missed or the holder died; waiters in
// the same process queue in memory. Waiting ends with the waiter's ctx.
//
// If the lock is lost while fn runs (the process stalled past the lock's
// expiry, or Redis could not be reached to renew it), fn's ctx is
// cancelled with [ErrLockLost] as its cause. The save is a Lua script that
// writes fn's grant only if the lock is still this Update's, or, if no one
// holds it, if the saved record is still the one fn got: a holder that
// stalled never overwrites a grant saved after its lock expired, and a
// refreshed grant nobody contradicts is not thrown away (its old refresh
// token is spent). When the save is refused, Update returns [ErrLockLost].
//
// # When Redis is down
//
// The store fails closed: an operation that cannot reach Redis returns an
// error wrapping [ErrUnavailable] as soon as the client gives up (after its
// own retries: [redis.Options.MaxRetries]), without waiting for a lock,
// without running fn, and without a fallback. A refresh or an escalation that cannot be made
// exclusive across the fleet is not made at all: two processes redeeming
// one rotating refresh token would get the grant revoked. A source keeps
// the token it holds meanwhile, so requests that need no remedy go on.
//
// If Redis goes away while fn runs, the grant fn returns cannot be saved:
// Update returns [ErrUnavailable], and the store keeps the record in
// memory and writes it at the start of this process's next Update of the
// key, if the saved record is still the one fn got, before fn runs. Run
// Redis with persistence (appendonly yes): a Redis that restarts empty has
// lost every grant, and the fleet must authorize again.
package redisstore

import (
	"context"
	"crypto/cipher"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/stepup-go/stepup"
	"github.com/stepup-go/stepup/internal/grantrecord"
	"github.com/stepup-go/stepup/internal/keylock"
)

var (
	// ErrUnavailable says that Redis could not be reached or refused the
	// command: the store failed closed. The error wrapping it also wraps
	// go-redis's error.
	ErrUnavailable = errors.New("redisstore: Redis unavailable")

	// ErrLockLost says that an [Store.Update] lost its lock while fn ran
	// and that a newer grant was saved meanwhile, or another Update holds
	// the lock: fn's grant was not saved. It is also the cause of fn's
	// ctx when the lock is lost.
	ErrLockLost = errors.New("redisstore: lock lost")

	// ErrCorrupt says that a stored record cannot be used: it is not a
	// record, was altered, was moved from another key, was written by an
	// unknown version, or is sealed while the store has no AEAD (or the
	// other way round). [Store.Delete] clears it.
	ErrCorrupt = grantrecord.ErrCorrupt
)

// Defaults of the options.
const (
	// DefaultPrefix begins the name of every Redis key the store uses.
	DefaultPrefix = "stepup:"
	// DefaultLockTTL is how long a lock lasts unless renewed.
	DefaultLockTTL = 15 * time.Second
	// DefaultRetention is how long a grant with a refresh token is kept
	// after it was last saved.
	DefaultRetention = 30 * 24 * time.Hour
)

// Store keeps grants in Redis. It is safe for concurrent use. It does not
// own the client: close the client after the last use of the store.
type Store struct {
	client    redis.UniversalClient
	prefix    string
	lockTTL   time.Duration
	retention time.Duration
	codec     grantrecord.Codec
	local     keylock.Set

	mu      sync.Mutex
	pending map[string]pendingSave // by key ID: saves that found Redis down
}

var _ stepup.Store = (*Store)(nil)

// pendingSave is a record whose save failed because Redis could not be
// reached, kept to be written by the next Update of its key.
type pendingSave struct {
	base  []byte // the record fn got, nil for none
	rec   []byte // the record to save
	grant *stepup.SavedGrant
}

// Option configures a [Store] made by [New].
type Option func(*Store)

// WithPrefix begins the name of every Redis key the store uses with
// prefix instead of [DefaultPrefix]. Stores that share a prefix share
// their grants.
func WithPrefix(prefix string) Option {
	return func(s *Store) { s.prefix = prefix }
}

// WithLockTTL makes Update's locks last d unless renewed, instead of
// [DefaultLockTTL]; they are renewed every d/3 while fn runs. A process
// that dies holding a lock keeps the others waiting up to d. Values under
// 30 ms are raised to it.
func WithLockTTL(d time.Duration) Option {
	return func(s *Store) { s.lockTTL = max(d, 30*time.Millisecond) }
}

// WithRetention keeps a grant with a refresh token for d after it was last
// saved, instead of [DefaultRetention]; set it to the refresh token's
// lifetime at the authorization server. Values under a second are raised
// to it.
func WithRetention(d time.Duration) Option {
	return func(s *Store) { s.retention = max(d, time.Second) }
}

// WithAEAD seals every record with aead (for example AES-GCM from
// [crypto/aes] and [crypto/cipher.NewGCM]) under a random nonce, bound to
// the record's key, and refuses records that are not so sealed: whoever
// reads Redis or its backups learns no token, and whoever can write to it
// cannot plant one. Give every process of the fleet the same AEAD key.
func WithAEAD(aead cipher.AEAD) Option {
	return func(s *Store) { s.codec.AEAD = aead }
}

// New returns a store keeping its grants in Redis through client, which
// may be a [*redis.Client], [*redis.ClusterClient] or any
// [redis.UniversalClient].
func New(client redis.UniversalClient, opts ...Option) *Store {
	s := &Store{client: client, prefix: DefaultPrefix, lockTTL: DefaultLockTTL, retention: DefaultRetention}
	for _, opt := range opts {
		opt(s)
	}
	return s
}

// Load returns the grant saved under key, or nil when there is none. It
// takes no lock.
func (s *Store) Load(ctx context.Context, key stepup.StoreKey) (*stepup.SavedGrant, error) {
	res, err := loadScript.Run(ctx, s.client, []string{s.names(grantrecord.ID(key)).grant}, grantrecord.MaxSize).Result()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, failure(ctx, "loading", err)
	}
	rec, oversized, err := record(res)
	if err != nil {
		return nil, unavailable("loading", err)
	}
	return s.decode(key, rec, oversized)
}

// Update runs fn exclusively for key across every process sharing the
// Redis and prefix, and saves the grant fn returns, if any; see the
// package documentation for the lock, its loss and Redis outages.
// fn must not call Update or Delete for key: it would wait for itself.
func (s *Store) Update(ctx context.Context, key stepup.StoreKey, fn func(ctx context.Context, saved *stepup.SavedGrant) (*stepup.SavedGrant, error)) error {
	id := grantrecord.ID(key)
	unlockLocal, err := s.local.Lock(ctx, id)
	if err != nil {
		return fmt.Errorf("redisstore: waiting for the lock: %w", err)
	}
	defer unlockLocal()
	h, err := s.acquire(ctx, s.names(id))
	if err != nil {
		return err
	}
	saving := false
	defer func() {
		if !saving {
			s.release(ctx, h)
		}
	}()
	if err := s.writePending(ctx, id, h); err != nil {
		return err
	}
	saved, err := s.decode(key, h.rec, h.oversized)
	if err != nil {
		return err
	}
	g, err := s.run(ctx, h, saved, fn)
	if err != nil || g == nil {
		return err
	}
	rec, err := s.codec.Encode(key, g)
	if err != nil {
		return fmt.Errorf("redisstore: saving: %w", err)
	}
	saving = true
	return s.save(ctx, id, h, rec, g)
}

// Delete removes the grant saved under key, if any, under key's lock, and
// forgets a save of it that found Redis down.
func (s *Store) Delete(ctx context.Context, key stepup.StoreKey) error {
	id := grantrecord.ID(key)
	unlockLocal, err := s.local.Lock(ctx, id)
	if err != nil {
		return fmt.Errorf("redisstore: waiting for the lock: %w", err)
	}
	defer unlockLocal()
	s.takePending(id)
	h, err := s.acquire(ctx, s.names(id))
	if err != nil {
		return err
	}
	if _, err := s.write(ctx, h, h.rec, nil, 0, true); err != nil {
		s.release(ctx, h)
		return unavailable("deleting", err)
	}
	return nil
}

// run calls fn while a goroutine renews h's lock, and stops renewing when
// fn returns or panics.
func (s *Store) run(ctx context.Context, h *hold, saved *stepup.SavedGrant, fn func(context.Context, *stepup.SavedGrant) (*stepup.SavedGrant, error)) (*stepup.SavedGrant, error) {
	fctx, stop := s.keep(ctx, h)
	defer stop()
	return fn(fctx, saved)
}

// save writes rec, the record of g, and releases h's lock. A refused write
// is ErrLockLost; a write that found Redis down is kept for the next
// Update of the key.
func (s *Store) save(ctx context.Context, id string, h *hold, rec []byte, g *stepup.SavedGrant) error {
	ok, err := s.write(ctx, h, h.rec, rec, s.ttl(g), true)
	if err != nil {
		s.putPending(id, pendingSave{base: h.rec, rec: rec, grant: g})
		return unavailable("saving", err)
	}
	if !ok {
		return fmt.Errorf("%w: a newer grant was saved, or another process holds the lock; this grant was not saved", ErrLockLost)
	}
	return nil
}

// writePending writes the record a failed save of key left, if the saved
// record is still the one that save's fn got; h.rec becomes it.
func (s *Store) writePending(ctx context.Context, id string, h *hold) error {
	p, ok := s.takePending(id)
	if !ok || h.oversized || string(p.base) != string(h.rec) {
		return nil // none, or a record saved since supersedes it
	}
	saved, err := s.write(ctx, h, h.rec, p.rec, s.ttl(p.grant), false)
	if err != nil {
		s.putPending(id, p)
		return unavailable("saving a grant kept while Redis was down", err)
	}
	if saved {
		h.rec = p.rec
	}
	return nil
}

// ttl returns how long to keep g: the retention when it has a refresh
// token, else until its access token expires.
func (s *Store) ttl(g *stepup.SavedGrant) time.Duration {
	d := s.retention
	if g.Token.RefreshToken == "" && !g.Token.Expiry.IsZero() {
		d = min(d, time.Until(g.Token.Expiry))
	}
	return max(d, time.Second)
}

// decode returns the grant of rec, nil for none; an oversized record,
// left unread, is corrupt.
func (s *Store) decode(key stepup.StoreKey, rec []byte, oversized bool) (*stepup.SavedGrant, error) {
	if oversized {
		return nil, fmt.Errorf("redisstore: %w: over %d bytes", ErrCorrupt, grantrecord.MaxSize)
	}
	if rec == nil {
		return nil, nil
	}
	g, err := s.codec.Decode(key, rec)
	if err != nil {
		return nil, fmt.Errorf("redisstore: %w", err)
	}
	return g, nil
}

func (s *Store) takePending(id string) (pendingSave, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.pending[id]
	delete(s.pending, id)
	return p, ok
}

func (s *Store) putPending(id string, p pendingSave) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pending == nil {
		s.pending = make(map[string]pendingSave)
	}
	s.pending[id] = p
}

// names are the Redis names of one key's entries. The hash tag puts them
// in one Redis Cluster slot, as the scripts that touch two of them need.
type names struct {
	grant, lock, released string
}

func (s *Store) names(id string) names {
	base := s.prefix + "{" + id + "}:"
	return names{grant: base + "grant", lock: base + "lock", released: base + "released"}
}

// failure returns the error of op, a Redis command run under ctx that
// failed with err: ctx's error when ctx ended meanwhile, else unavailable.
func failure(ctx context.Context, op string, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("redisstore: %s: %w", op, context.Cause(ctx))
	}
	return unavailable(op, err)
}

// unavailable wraps err, the error of a Redis command, in ErrUnavailable.
// go-redis's errors say what failed (a refused connection, a Redis error
// reply), never the command's arguments, so no token reaches them.
func unavailable(op string, err error) error {
	return fmt.Errorf("redisstore: %s: %w: %w", op, ErrUnavailable, err)
}
