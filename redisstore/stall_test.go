//go:build unix

package redisstore_test

import (
	"context"
	"syscall"
	"testing"
	"time"

	"github.com/stepup-go/stepup"
	"github.com/stepup-go/stepup/internal/storetest"
)

// A process holding the lock is stopped (SIGSTOP) past its lock's expiry,
// as a long GC pause or a suspended VM would: another process takes the
// lock meanwhile. Resumed, the stalled holder finds its lock lost (fn's
// ctx ends with ErrLockLost) and cannot overwrite the newer grant; if no
// one saved one, its own is kept.
func TestStalledHolder(t *testing.T) {
	for _, tc := range []struct {
		name       string
		other      *stepup.SavedGrant // saved by the other process, or nil
		wantResult string
		want       string
	}{
		{name: "newer grant survives", other: storetest.Grant("newer"), wantResult: "lock lost", want: "newer"},
		{name: "nothing newer", wantResult: "saved", want: "stale"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const lockTTL = 300 * time.Millisecond
			f := newFixture(t)
			st := f.store()
			storetest.Save(t, st, storetest.Key, storetest.Grant("old"))

			p := storetest.Start(t, "stalled-holder", f.env(lockTTL)...)
			p.Expect("holding")
			p.Signal(syscall.SIGSTOP)
			// This Update waits until the stopped holder's lock expires.
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			if err := st.Update(ctx, storetest.Key, func(context.Context, *stepup.SavedGrant) (*stepup.SavedGrant, error) {
				return tc.other, nil
			}); err != nil {
				t.Fatal(err)
			}
			p.Signal(syscall.SIGCONT)
			if got := p.Expect("lost"); got != "ErrLockLost" {
				t.Fatalf("the holder's ctx ended with %q, want ErrLockLost", got)
			}
			if got := p.Expect("result"); got != tc.wantResult {
				t.Fatalf("the stalled holder's Update: %q, want %q", got, tc.wantResult)
			}
			p.Wait()
			storetest.RequireGrant(t, storetest.Grant(tc.want), storetest.Load(t, st, storetest.Key))
		})
	}
}
