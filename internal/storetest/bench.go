package storetest

import (
	"context"
	"testing"

	"github.com/stepup-go/stepup"
)

// Benchmarks measures the quiet path of a source sharing its grant
// through st: Load (its first use) and an Update whose fn adopts the saved
// grant without a network call (a process that finds the grant already
// renewed), then an Update that saves.
func Benchmarks(b *testing.B, st stepup.Store) {
	ctx := context.Background()
	g := Grant("a1")
	Save(b, st, Key, g)
	b.Run("Load", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			if _, err := st.Load(ctx, Key); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("UpdateAdopt", func(b *testing.B) {
		adopt := func(context.Context, *stepup.SavedGrant) (*stepup.SavedGrant, error) { return nil, nil }
		b.ReportAllocs()
		for range b.N {
			if err := st.Update(ctx, Key, adopt); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("UpdateSave", func(b *testing.B) {
		save := func(context.Context, *stepup.SavedGrant) (*stepup.SavedGrant, error) { return g, nil }
		b.ReportAllocs()
		for range b.N {
			if err := st.Update(ctx, Key, save); err != nil {
				b.Fatal(err)
			}
		}
	})
}
