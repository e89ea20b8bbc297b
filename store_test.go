package stepup_test

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stepup-go/stepup"
)

// memStore is a Store in memory: what several processes sharing a real
// store see, for sources in one test process. Update holds a per-key lock
// that waiters queue for under their context.
type memStore struct {
	mu      sync.Mutex
	grants  map[stepup.StoreKey]stepup.SavedGrant
	locks   map[stepup.StoreKey]chan struct{}
	updates atomic.Int32
}

func newMemStore() *memStore {
	return &memStore{grants: map[stepup.StoreKey]stepup.SavedGrant{}, locks: map[stepup.StoreKey]chan struct{}{}}
}

func (m *memStore) Load(_ context.Context, key stepup.StoreKey) (*stepup.SavedGrant, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	g, ok := m.grants[key]
	if !ok {
		return nil, nil
	}
	return &g, nil
}

func (m *memStore) Update(ctx context.Context, key stepup.StoreKey, fn func(context.Context, *stepup.SavedGrant) (*stepup.SavedGrant, error)) error {
	m.mu.Lock()
	lock, ok := m.locks[key]
	if !ok {
		lock = make(chan struct{}, 1)
		m.locks[key] = lock
	}
	m.mu.Unlock()
	select {
	case lock <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-lock }()
	m.updates.Add(1)
	saved, _ := m.Load(ctx, key)
	g, err := fn(ctx, saved)
	if err != nil || g == nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.grants[key] = *g
	return nil
}

func (m *memStore) Delete(_ context.Context, key stepup.StoreKey) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.grants, key)
	return nil
}

// Sources sharing a store share one refresh: the second to get the lock
// finds the token the first saved and takes it without a network call, so
// a rotating refresh token is redeemed once.
func TestStoreSharesOneRefresh(t *testing.T) {
	checkLeaks(t)
	w := newWorld(t)
	w.protect("/files", "files:read")
	st := newMemStore()
	tok := w.as.issue(true, "files:read")
	require.NoError(t, w.source(nil, stepup.WithStore(st)).SetContext(w.ctx(), tok, stepup.Scopes{"files:read"}))
	w.as.revoke(tok)

	const n = 4
	var sources [n]*stepup.TokenSource
	var wg sync.WaitGroup
	for i := range sources {
		sources[i] = w.source(nil, stepup.WithStore(st), stepup.WithEscalator(newEscalator(w)))
		c := &http.Client{Transport: w.transport(sources[i])}
		wg.Add(1)
		go func() {
			defer wg.Done()
			assert.Equal(t, http.StatusOK, w.status(c, "/files"))
		}()
	}
	wg.Wait()

	assert.Equal(t, int32(1), w.as.refreshHits.Load(), "refreshes across the sources")
	assert.Zero(t, w.as.reuses.Load(), "a rotated refresh token was redeemed twice")
	first, err := sources[0].Token()
	require.NoError(t, err)
	for _, ts := range sources[1:] {
		got, err := ts.Token()
		require.NoError(t, err)
		assert.Equal(t, first.AccessToken, got.AccessToken)
	}
}

// Sources sharing a store share one escalation: the others find the saved
// grant cures their challenge, and nobody is asked twice.
func TestStoreSharesOneEscalation(t *testing.T) {
	checkLeaks(t)
	w := newWorld(t)
	w.protect("/write", "files:write")
	st := newMemStore()
	require.NoError(t, w.source(nil, stepup.WithStore(st)).SetContext(w.ctx(), w.as.issue(true, "files:read"), stepup.Scopes{"files:read"}))

	esc := newEscalator(w)
	const n = 4
	var wg sync.WaitGroup
	for range n {
		c := &http.Client{Transport: w.transport(w.source(nil, stepup.WithStore(st), stepup.WithEscalator(esc)))}
		wg.Add(1)
		go func() {
			defer wg.Done()
			assert.Equal(t, http.StatusOK, w.status(c, "/write"))
		}()
	}
	wg.Wait()

	assert.Equal(t, int32(1), esc.calls.Load(), "prompts across the sources")
	saved, err := st.Load(w.ctx(), stepup.StoreKey{Resource: w.resource()})
	require.NoError(t, err)
	assert.True(t, saved.Granted.ContainsAll(stepup.Scopes{"files:read", "files:write"}), "saved %q", saved.Granted)
}

// The saved grant is loaded on first use and wins over the token given to
// NewTokenSource; Set saves, Set(nil) deletes; WithIssuer keys the grant by
// issuer too.
func TestStoreLoadSetDelete(t *testing.T) {
	w := newWorld(t)
	st := newMemStore()
	saved := w.as.issue(true, "files:read")
	key := stepup.StoreKey{Resource: w.resource(), Issuer: w.as.URL}
	require.NoError(t, st.Update(w.ctx(), key, func(context.Context, *stepup.SavedGrant) (*stepup.SavedGrant, error) {
		return &stepup.SavedGrant{Token: saved, Requested: stepup.Scopes{"files:read"}, Granted: stepup.Scopes{"files:read"}, Issuer: w.as.URL}, nil
	}))

	ts := w.source(w.as.issue(true, "other"), stepup.WithStore(st), stepup.WithIssuer(w.as.URL))
	got, err := ts.TokenContext(w.ctx())
	require.NoError(t, err)
	assert.Equal(t, saved.AccessToken, got.AccessToken, "the saved grant wins")
	_, granted := ts.Scopes()
	assert.Equal(t, stepup.Scopes{"files:read"}, granted)

	other := w.source(nil, stepup.WithStore(st)) // no issuer: another key
	_, err = other.TokenContext(w.ctx())
	assert.ErrorIs(t, err, stepup.ErrNoToken)

	fresh := w.as.issue(true, "files:read", "files:write")
	require.NoError(t, ts.SetContext(w.ctx(), fresh, stepup.Scopes{"files:read", "files:write"}))
	g, err := st.Load(w.ctx(), key)
	require.NoError(t, err)
	assert.Equal(t, fresh.AccessToken, g.Token.AccessToken)
	assert.Equal(t, stepup.Scopes{"files:read", "files:write"}, g.Granted)
	assert.Equal(t, w.as.URL, g.Issuer)

	require.NoError(t, ts.SetContext(w.ctx(), nil, nil))
	g, err = st.Load(w.ctx(), key)
	require.NoError(t, err)
	assert.Nil(t, g)
}

// A store that fails to load fails the request with an error that says so,
// and the next request tries again.
func TestStoreLoadFailure(t *testing.T) {
	w := newWorld(t)
	w.protect("/files", "files:read")
	st := &failingStore{memStore: newMemStore()}
	st.fail.Store(true)
	c := &http.Client{Transport: w.transport(w.source(nil, stepup.WithStore(st), stepup.WithEscalator(newEscalator(w))))}

	_, err := w.get(c, "/files")
	assert.ErrorContains(t, err, "loading the saved grant")
	assert.ErrorIs(t, err, errStoreDown)
	assert.Zero(t, w.hits.Load(), "nothing was sent")

	st.fail.Store(false)
	status, _ := w.mustGet(c, "/files")
	assert.Equal(t, http.StatusOK, status)
}

// A store that cannot give a refresh its exclusivity (Redis down, say)
// fails the request with ErrRefreshFailed, no refresh sent and nobody
// prompted: the store's own error is in the chain.
func TestStoreUnavailableFailsRefreshClosed(t *testing.T) {
	w := newWorld(t)
	w.protect("/files", "files:read")
	st := &failingStore{memStore: newMemStore()}
	tok := w.as.issue(true, "files:read")
	esc := newEscalator(w)
	ts := w.source(tok, stepup.WithStore(st), stepup.WithEscalator(esc))
	w.as.revoke(tok)
	c := &http.Client{Transport: w.transport(ts)}
	_, err := ts.TokenContext(w.ctx()) // loads while the store works
	require.NoError(t, err)
	st.failUpdate.Store(true)

	ce := w.mustStop(c, "/files", stepup.ErrRefreshFailed)
	assert.ErrorIs(t, ce, errStoreDown)
	assert.Zero(t, w.as.refreshHits.Load())
	assert.Zero(t, esc.calls.Load())
}

// A remedy done while the store failed to save it stands: the new token is
// in use here (the old refresh token is spent either way), and the request
// succeeds.
func TestStoreSaveFailureKeepsTheRemedy(t *testing.T) {
	w := newWorld(t)
	w.protect("/files", "files:read")
	st := &failingStore{memStore: newMemStore()}
	tok := w.as.issue(true, "files:read")
	ts := w.source(tok, stepup.WithStore(st), stepup.WithEscalator(newEscalator(w)))
	w.as.revoke(tok)
	st.failSave.Store(true)

	status, _ := w.mustGet(&http.Client{Transport: w.transport(ts)}, "/files")

	assert.Equal(t, http.StatusOK, status)
	assert.Equal(t, int32(1), w.as.refreshHits.Load())
	got, err := ts.Token()
	require.NoError(t, err)
	assert.NotEqual(t, tok.AccessToken, got.AccessToken)
}

var errStoreDown = errors.New("store down")

type failingStore struct {
	*memStore
	fail       atomic.Bool // Load fails
	failUpdate atomic.Bool // Update fails before fn runs
	failSave   atomic.Bool // Update runs fn, then fails to save
}

func (f *failingStore) Update(ctx context.Context, key stepup.StoreKey, fn func(context.Context, *stepup.SavedGrant) (*stepup.SavedGrant, error)) error {
	if f.failUpdate.Load() {
		return errStoreDown
	}
	if !f.failSave.Load() {
		return f.memStore.Update(ctx, key, fn)
	}
	if _, err := fn(ctx, nil); err != nil {
		return err
	}
	return errStoreDown
}

func (f *failingStore) Load(ctx context.Context, key stepup.StoreKey) (*stepup.SavedGrant, error) {
	if f.fail.Load() {
		return nil, errStoreDown
	}
	return f.memStore.Load(ctx, key)
}
