package stepup

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync/atomic"

	"golang.org/x/oauth2"
)

// Store keeps a resource's grant where other [TokenSource]s see it: after a
// restart, in other processes, on other machines. With a store, a source
// runs each refresh and each escalation inside [Store.Update], so that one
// rotating refresh token is redeemed once across everyone sharing the
// store (OAuth 2.1 §4.3.1 treats a second use as theft and revokes the
// grant), and one person is asked to consent once.
//
// Implementations must be safe for concurrent use.
type Store interface {
	// Load returns the grant saved under key, or nil and no error when
	// there is none.
	Load(ctx context.Context, key StoreKey) (*SavedGrant, error)

	// Update runs fn exclusively for key across everyone sharing the
	// store: no other Update of key runs meanwhile, in this process or
	// another. fn gets the grant saved under key when it starts (nil when
	// none) and returns the grant to save, or nil to leave the saved one
	// as it is; an error from fn saves nothing and is returned. The ctx
	// fn gets ends when the exclusivity is lost (a lock that expired, a
	// store that went away); a grant returned after that is saved only
	// if no other grant was saved since fn got saved: it never replaces a
	// grant fn did not see. (Dropping it would lose a rotated refresh
	// token whose predecessor fn has spent.) Update waits for the
	// exclusivity under ctx. fn must not call Update or Delete of the
	// same key: it would wait for itself.
	Update(ctx context.Context, key StoreKey, fn func(ctx context.Context, saved *SavedGrant) (*SavedGrant, error)) error

	// Delete removes the grant saved under key, if any.
	Delete(ctx context.Context, key StoreKey) error
}

// StoreKey names a saved grant: one per protected resource and
// authorization server, never one token for two resources.
type StoreKey struct {
	// Resource is the RFC 8707 resource of the [TokenSource].
	Resource string
	// Issuer is the issuer (RFC 8414 §2) the source is tied to, or "" for
	// whichever authorization server the resource names.
	Issuer string
}

// SavedGrant is what a [Store] keeps of a grant.
type SavedGrant struct {
	// Token is the current token: access token, type, refresh token and
	// expiry.
	Token *oauth2.Token `json:"token"`
	// Requested is the scope the grant's authorization requested.
	Requested Scopes `json:"requested,omitempty"`
	// Granted is the scope granted (RFC 6749 §5.1).
	Granted Scopes `json:"granted,omitempty"`
	// Issuer is the issuer of the authorization server that issued Token,
	// when known.
	Issuer string `json:"issuer,omitempty"`
	// DPoPKey is the private JWK (RFC 7517) of the key Token is bound to
	// (RFC 9449, [WithDPoP]), when it is and the key can be exported. It
	// is as secret as the tokens.
	DPoPKey json.RawMessage `json:"dpop_key,omitempty"`
}

// How a TokenSource uses its store.

// usable reports whether g holds a token to send.
func usable(g *SavedGrant) bool {
	return g != nil && g.Token != nil && g.Token.AccessToken != ""
}

// load takes the grant saved in the store, once, on first use. A failed
// load is tried again by the next caller.
func (s *TokenSource) load(ctx context.Context) error {
	if s.loaded.Load() {
		return nil
	}
	s.loadMutex.Lock()
	defer s.loadMutex.Unlock()
	if s.loaded.Load() {
		return nil
	}
	saved, err := s.store.Load(ctx, s.storeKey)
	if err != nil {
		return fmt.Errorf("stepup: loading the saved grant of %s: %w", s.resource, err)
	}
	if usable(saved) {
		s.mu.Lock()
		s.adoptLocked(saved)
		s.mu.Unlock()
	}
	s.loaded.Store(true)
	return nil
}

// adoptLocked makes the saved grant g current.
func (s *TokenSource) adoptLocked(g *SavedGrant) {
	s.adoptDPoPKeyLocked(g.DPoPKey)
	s.installLocked(g.Token, g.Requested, true)
	if g.Granted != nil {
		s.granted = slices.Clone(g.Granted)
	}
	if g.Issuer != "" {
		s.issuer = g.Issuer
	}
}

// savedLocked is what the store keeps of the current grant.
func (s *TokenSource) savedLocked() *SavedGrant {
	tok := s.snap.Load().tok
	return &SavedGrant{Token: tok, Requested: slices.Clone(s.requested), Granted: slices.Clone(s.granted), Issuer: s.issuer,
		DPoPKey: s.savedDPoPKeyLocked(tok)}
}

// exclusive runs fn alone across everyone sharing the source's store, with
// the grant saved there, and saves the grant fn returns, if any. Without a
// store it runs fn as it is: the flights keep it alone in this process.
//
// A store that fails before fn runs fails the remedy: without exclusivity
// a refresh could redeem a refresh token another process redeems too. One
// that fails to save after fn succeeded does not: fn installed its grant
// here already, and its old refresh token is spent either way.
func (s *TokenSource) exclusive(ctx context.Context, fn func(ctx context.Context, saved *SavedGrant) (*SavedGrant, error)) error {
	if s.store == nil {
		_, err := fn(ctx, nil)
		return err
	}
	var ran, done atomic.Bool
	err := s.store.Update(ctx, s.storeKey, func(ctx context.Context, saved *SavedGrant) (*SavedGrant, error) {
		ran.Store(true)
		g, err := fn(ctx, saved)
		done.Store(err == nil)
		return g, err
	})
	switch {
	case done.Load():
		return nil
	case !ran.Load():
		return &storeError{resource: s.resource, err: err}
	}
	return err
}

// storeError is the error of a store that could not give a remedy its
// exclusivity.
type storeError struct {
	resource string
	err      error
}

func (e *storeError) Error() string {
	return "stepup: the store of " + e.resource + ": " + e.err.Error()
}
func (e *storeError) Unwrap() error { return e.err }

// adoptSaved makes the saved grant current if it is usable and is not the
// grant whose token was rejected: another source sharing the store renewed
// it already. It reports whether it did.
func (s *TokenSource) adoptSaved(saved *SavedGrant, rejected *oauth2.Token) bool {
	if !usable(saved) || rejected != nil && saved.Token.AccessToken == rejected.AccessToken {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if cur := s.snap.Load().tok; cur == nil || cur.AccessToken != saved.Token.AccessToken {
		s.adoptLocked(saved)
	}
	return true
}
