package stepup

import (
	"context"

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
	// store that went away); a grant returned after that must not be
	// saved. Update waits for the exclusivity under ctx.
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
}
