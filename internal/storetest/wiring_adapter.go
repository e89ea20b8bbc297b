//go:build !storeintegration

package storetest

import (
	"context"

	"golang.org/x/oauth2"

	"github.com/stepup-go/stepup"
)

// newStoreTransport returns a Transport whose TokenSource shares its grant
// through st under key, built on the API stepup has today: the saved grant
// is loaded at the start, each refresh runs inside st.Update through the
// source's RefreshFunc, each escalation inside st.Update through the
// Escalator, and each adopts the saved grant, without a network call, when
// it already answers the rejection. It is what stepup.WithStore does inside
// the source (see wiring_store.go, built with the storeintegration tag),
// and goes once that option is on main.
func newStoreTransport(ctx context.Context, st stepup.Store, key stepup.StoreKey, cfg *oauth2.Config, esc stepup.Escalator) (*stepup.Transport, error) {
	saved, err := st.Load(ctx, key)
	if err != nil {
		return nil, err
	}
	var tok *oauth2.Token
	var requested stepup.Scopes
	if saved != nil {
		tok, requested = withGranted(saved), saved.Requested
	}
	ts, err := stepup.NewTokenSource(key.Resource, tok,
		stepup.WithScopes(requested...),
		stepup.WithRefreshFunc(refreshInStore(st, key, stepup.RefreshWithConfig(cfg))))
	if err != nil {
		return nil, err
	}
	return &stepup.Transport{Source: ts, Escalator: escalateInStore(st, key, esc)}, nil
}

// refreshInStore runs refresh inside st.Update: a saved token other than
// the rejected one is adopted; otherwise the saved grant is refreshed and
// the new token saved.
func refreshInStore(st stepup.Store, key stepup.StoreKey, refresh stepup.RefreshFunc) stepup.RefreshFunc {
	return func(ctx context.Context, rejected *oauth2.Token, resource string) (*oauth2.Token, error) {
		var out *oauth2.Token
		err := st.Update(ctx, key, func(ctx context.Context, saved *stepup.SavedGrant) (*stepup.SavedGrant, error) {
			if saved != nil && saved.Token.AccessToken != rejected.AccessToken {
				out = withGranted(saved)
				return nil, nil
			}
			from, next := rejected, &stepup.SavedGrant{Issuer: key.Issuer}
			if saved != nil {
				from, next = saved.Token, &stepup.SavedGrant{Requested: saved.Requested, Granted: saved.Granted, Issuer: saved.Issuer}
			}
			nt, err := refresh(ctx, from, resource)
			if err != nil {
				return nil, err
			}
			if nt.RefreshToken == "" {
				c := *nt
				c.RefreshToken = from.RefreshToken
				nt = &c
			}
			if g, ok := nt.Extra("scope").(string); ok {
				next.Granted, _ = stepup.ParseScopes(g)
			}
			next.Token, out = nt, nt
			return next, nil
		})
		return out, err
	}
}

// escalateInStore runs esc inside st.Update: a saved grant whose token is
// not the rejected one and whose scope covers the challenge is adopted;
// otherwise esc is asked and its grant saved.
func escalateInStore(st stepup.Store, key stepup.StoreKey, esc stepup.Escalator) stepup.Escalator {
	return stepup.EscalatorFunc(func(ctx context.Context, req *stepup.EscalationRequest) (*stepup.Grant, error) {
		var out *stepup.Grant
		err := st.Update(ctx, key, func(ctx context.Context, saved *stepup.SavedGrant) (*stepup.SavedGrant, error) {
			if saved != nil && (req.RejectedToken == nil || saved.Token.AccessToken != req.RejectedToken.AccessToken) &&
				saved.Granted.ContainsAll(req.ChallengedScopes) {
				out = &stepup.Grant{Token: withGranted(saved), Scopes: saved.Requested, Issuer: saved.Issuer}
				return nil, nil
			}
			g, err := esc.Escalate(ctx, req)
			if err != nil {
				return nil, err
			}
			requested := g.Scopes
			if requested == nil {
				requested = req.Scopes
			}
			granted := requested
			if s, ok := g.Token.Extra("scope").(string); ok {
				granted, _ = stepup.ParseScopes(s)
			}
			out = g
			return &stepup.SavedGrant{Token: g.Token, Requested: requested, Granted: granted, Issuer: g.Issuer}, nil
		})
		return out, err
	})
}

// withGranted returns the saved token carrying the granted scope the way a
// token response does, so the source learns it.
func withGranted(saved *stepup.SavedGrant) *oauth2.Token {
	return saved.Token.WithExtra(map[string]any{"scope": saved.Granted.String()})
}
