package filestore_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"golang.org/x/oauth2"

	"github.com/stepup-go/stepup"
	"github.com/stepup-go/stepup/filestore"
)

// A command-line program keeps its grant across runs. Without WithDir the
// store uses os.UserConfigDir()/stepup/tokens.
func Example() {
	tmp, err := os.MkdirTemp("", "example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(tmp)
	st, err := filestore.New(filestore.WithDir(filepath.Join(tmp, "tokens")))
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	key := stepup.StoreKey{Resource: "https://mcp.example.com/mcp"}

	// One run saves the grant it obtained, under the file lock.
	err = st.Update(ctx, key, func(ctx context.Context, saved *stepup.SavedGrant) (*stepup.SavedGrant, error) {
		return &stepup.SavedGrant{
			Token:     &oauth2.Token{AccessToken: "access", RefreshToken: "refresh"},
			Requested: stepup.Scopes{"files:read"},
			Granted:   stepup.Scopes{"files:read"},
		}, nil
	})
	if err != nil {
		log.Fatal(err)
	}

	// The next run finds it.
	g, err := st.Load(ctx, key)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("granted:", g.Granted)
	// Output: granted: files:read
}
