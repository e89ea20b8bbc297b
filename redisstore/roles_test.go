package redisstore_test

import (
	"context"
	"errors"

	"github.com/stepup-go/stepup"
	"github.com/stepup-go/stepup/internal/storetest"
	"github.com/stepup-go/stepup/redisstore"
)

// childRoles are the roles of this package's child processes besides
// storetest's.
var childRoles = map[string]storetest.Role{"stalled-holder": stalledHolder}

// stalledHolder holds the lock in an Update whose fn waits for its ctx to
// end, and then returns a grant all the same, as a refresh that completed
// would; it says how its ctx ended and how Update ended.
func stalledHolder(ctx context.Context, c *storetest.Child) error {
	err := c.Store.Update(ctx, storetest.Key, func(ctx context.Context, _ *stepup.SavedGrant) (*stepup.SavedGrant, error) {
		c.Say("holding")
		<-ctx.Done()
		if errors.Is(context.Cause(ctx), redisstore.ErrLockLost) {
			c.Say("lost ErrLockLost")
		} else {
			c.Say("lost %v", context.Cause(ctx))
		}
		return storetest.Grant("stale"), nil
	})
	switch {
	case err == nil:
		c.Say("result saved")
	case errors.Is(err, redisstore.ErrLockLost):
		c.Say("result lock lost")
	default:
		c.Say("result %v", err)
	}
	return nil
}
