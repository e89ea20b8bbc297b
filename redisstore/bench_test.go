package redisstore_test

import (
	"context"
	"testing"

	"github.com/stepup-go/stepup/internal/storetest"
	"github.com/stepup-go/stepup/redisstore"
)

// The quiet path through Redis. The lock's cost is UpdateAdopt's time less
// Load's.
func BenchmarkStore(b *testing.B) {
	storetest.Benchmarks(b, newFixture(b).store())
}

// One GET round trip to the same server, for comparison.
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
