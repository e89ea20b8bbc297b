package redisstore_test

import (
	"context"
	"errors"
	"log"

	"github.com/redis/go-redis/v9"
	"golang.org/x/oauth2"

	"github.com/stepup-go/stepup"
	"github.com/stepup-go/stepup/redisstore"
)

// Every replica opens the store on the same Redis and prefix. Around each
// refresh, a replica runs Update: it adopts the saved grant when another
// replica already replaced the rejected token, else redeems the refresh
// token, once for the whole fleet, and returns the new grant to save. A
// TokenSource given the store does this itself.
func Example() {
	client := redis.NewClient(&redis.Options{Addr: "localhost:6379"})
	defer client.Close()
	st := redisstore.New(client, redisstore.WithPrefix("billing-agent:stepup:"))

	key := stepup.StoreKey{Resource: "https://mcp.example.com/mcp"}
	refresh := stepup.RefreshWithConfig(&oauth2.Config{
		ClientID: "billing-agent",
		Endpoint: oauth2.Endpoint{TokenURL: "https://as.example.com/token"},
	})
	rejected := &oauth2.Token{AccessToken: "the token the resource server refused"}

	err := st.Update(context.Background(), key, func(ctx context.Context, saved *stepup.SavedGrant) (*stepup.SavedGrant, error) {
		if saved == nil {
			return nil, errors.New("no grant yet: authorize first")
		}
		if saved.Token.AccessToken != rejected.AccessToken {
			return nil, nil // another replica refreshed: use saved.Token
		}
		// ctx ends if the lock is lost; the grant returned is then saved
		// only if no newer one was.
		tok, err := refresh(ctx, saved.Token, key.Resource)
		if err != nil {
			return nil, err
		}
		return &stepup.SavedGrant{Token: tok, Requested: saved.Requested, Granted: saved.Granted, Issuer: saved.Issuer}, nil
	})
	if errors.Is(err, redisstore.ErrUnavailable) {
		log.Print("Redis is down: no refresh now; the next request tries again")
	}
}
