package e2e

import (
	"fmt"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stepup-go/stepup/examples/internal/mcpclient"
	"github.com/stepup-go/stepup/examples/internal/mcpserver"
)

// concurrentCalls is how many tool calls the concurrency tests make at once.
const concurrentCalls = 20

// callConcurrently makes n calls of tool at once on s and returns their
// errors. The calls are released together once every goroutine is ready.
func callConcurrently(w *world, s mcpclient.Session, n int, tool string, args func(i int) map[string]any) []error {
	errs := make([]error, n)
	var ready, done sync.WaitGroup
	start := make(chan struct{})
	ready.Add(n)
	done.Add(n)
	for i := range n {
		go func() {
			defer done.Done()
			var a map[string]any
			if args != nil {
				a = args(i)
			}
			ready.Done()
			<-start
			_, errs[i] = s.CallTool(w.ctx, tool, a)
		}()
	}
	ready.Wait()
	close(start)
	done.Wait()
	return errs
}

// 20 concurrent calls that all draw the same 403 share one consent prompt.
func TestConcurrent403OneConsent(t *testing.T) {
	forEach(t, func(t *testing.T, sdk mcpclient.SDK, srv serverKind) {
		w := newWorld(t, sdk, srv)
		s := w.connect(mcpclient.Options{ProtocolVersion: protocolFor(sdk, srv)})

		errs := callConcurrently(w, s, concurrentCalls, mcpserver.ToolWrite,
			func(i int) map[string]any { return map[string]any{"text": fmt.Sprint(i)} })
		for _, err := range errs {
			assert.NoError(t, err)
		}
		st := w.as.Stats()
		assert.Equal(t, 2, st.ConsentPrompts, "the login and one consent for all 20 calls")
		assert.Equal(t, 0, st.Refreshes())
		assert.Equal(t, concurrentCalls, w.mcp.Counts().ToolCalls, "every call ran once")
		auths := w.authorizations()
		require.Len(t, auths, 2)
		assert.ElementsMatch(t, unionScopes, auths[1])
	})
}
