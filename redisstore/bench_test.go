package redisstore_test

import (
	"context"
	"testing"

	"github.com/stepup-go/stepup"
	"github.com/stepup-go/stepup/internal/storetest"
	"github.com/stepup-go/stepup/redisstore"
)

// The quiet path of a source sharing its grant through Redis: Load (the
// first use) and an Update whose fn adopts the saved grant without a
// network call (a process that finds the fleet already refreshed). GET is
// the round trip to the same server, for comparison: the lock's cost is
// Update's time less Load's.

func BenchmarkGET(b *testing.B) {
	f := newFixture(b)
	st := f.store()
	storetest.Save(b, st, storetest.Key, storetest.Grant("a1"))
	grant, _, _ := redisstore.Names(st, storetest.Key)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if err := f.client.Get(ctx, grant).Err(); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkLoad(b *testing.B) {
	f := newFixture(b)
	st := f.store()
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
	f := newFixture(b)
	st := f.store()
	storetest.Save(b, st, storetest.Key, storetest.Grant("a1"))
	ctx := context.Background()
	adopt := func(_ context.Context, saved *stepup.SavedGrant) (*stepup.SavedGrant, error) {
		if saved == nil {
			b.Fatal("no saved grant")
		}
		return nil, nil
	}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if err := st.Update(ctx, storetest.Key, adopt); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkUpdateSave(b *testing.B) {
	f := newFixture(b)
	st := f.store()
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
