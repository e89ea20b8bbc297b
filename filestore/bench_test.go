package filestore_test

import (
	"context"
	"testing"

	"github.com/stepup-go/stepup"
	"github.com/stepup-go/stepup/filestore"
	"github.com/stepup-go/stepup/internal/storetest"
)

// The quiet path of a source sharing its grant through the file store:
// Load (the first use) and an Update whose fn adopts the saved grant
// without a network call. UpdateSave writes: temporary file, flush,
// rename, folder flush.

func BenchmarkLoad(b *testing.B) {
	st := newStore(b, filestore.WithDir(privateDir(b)))
	storetest.Save(b, st, storetest.Key, storetest.Grant("a1"))
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if _, err := st.Load(ctx, storetest.Key); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkUpdateAdopt(b *testing.B) {
	st := newStore(b, filestore.WithDir(privateDir(b)))
	storetest.Save(b, st, storetest.Key, storetest.Grant("a1"))
	ctx := context.Background()
	adopt := func(context.Context, *stepup.SavedGrant) (*stepup.SavedGrant, error) { return nil, nil }
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if err := st.Update(ctx, storetest.Key, adopt); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkUpdateSave(b *testing.B) {
	st := newStore(b, filestore.WithDir(privateDir(b)))
	g := storetest.Grant("a1")
	ctx := context.Background()
	save := func(context.Context, *stepup.SavedGrant) (*stepup.SavedGrant, error) { return g, nil }
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if err := st.Update(ctx, storetest.Key, save); err != nil {
			b.Fatal(err)
		}
	}
}
