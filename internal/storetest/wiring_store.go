package storetest

import (
	"context"

	"golang.org/x/oauth2"

	"github.com/stepup-go/stepup"
)

// newStoreTransport returns a Transport whose TokenSource shares its grant
// through st under key with stepup.WithStore: the source loads the saved
// grant on first use and runs each refresh and each escalation inside
// st.Update.
func newStoreTransport(_ context.Context, st stepup.Store, key stepup.StoreKey, cfg *oauth2.Config, esc stepup.Escalator) (*stepup.Transport, error) {
	ts, err := stepup.NewTokenSource(key.Resource, nil,
		stepup.WithStore(st),
		stepup.WithIssuer(key.Issuer),
		stepup.WithOAuth2Config(cfg),
		stepup.WithEscalator(esc))
	if err != nil {
		return nil, err
	}
	return &stepup.Transport{Source: ts}, nil
}
