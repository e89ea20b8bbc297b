package filestore_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/stepup-go/stepup"
	"github.com/stepup-go/stepup/internal/storetest"
)

// childRoles are the roles of this package's child processes besides
// storetest's.
var childRoles = map[string]storetest.Role{"crashwriter": crashWriter}

// envTokenSize tells the crash writer how large to make its tokens.
const envTokenSize = "STEPUP_FILESTORE_TEST_TOKEN_SIZE"

// bigGrant is the k-th grant the crash writer saves: its access token is
// "k:" and size times one letter, so a part of it is told from the whole.
func bigGrant(k, size int) *stepup.SavedGrant {
	return storetest.Grant(strconv.Itoa(k) + ":" + strings.Repeat(string(rune('a'+k%26)), size))
}

// checkBigGrant returns k when g is the whole k-th grant of size.
func checkBigGrant(g *stepup.SavedGrant, size int) (int, error) {
	prefix, body, ok := strings.Cut(g.Token.AccessToken, ":")
	k, err := strconv.Atoi(prefix)
	if !ok || err != nil {
		return 0, fmt.Errorf("access token does not start with its number")
	}
	if body != strings.Repeat(string(rune('a'+k%26)), size) {
		return 0, fmt.Errorf("grant %d is not whole: %d bytes", k, len(body))
	}
	return k, nil
}

// crashWriter saves bigGrant(1), bigGrant(2), ... until it is killed.
// As Update is about to save the k-th it says "writing k d", where d is
// how long saving the one before took, from fn's return to Update's, in
// microseconds.
func crashWriter(ctx context.Context, c *storetest.Child) error {
	size, err := strconv.Atoi(os.Getenv(envTokenSize))
	if err != nil {
		return fmt.Errorf("%s: %w", envTokenSize, err)
	}
	var took time.Duration
	for k := 1; ; k++ {
		g := bigGrant(k, size)
		var returned time.Time
		if err := c.Store.Update(ctx, storetest.Key, func(context.Context, *stepup.SavedGrant) (*stepup.SavedGrant, error) {
			c.Say("writing %d %d", k, took.Microseconds())
			returned = time.Now()
			return g, nil
		}); err != nil {
			return err
		}
		took = time.Since(returned)
	}
}
