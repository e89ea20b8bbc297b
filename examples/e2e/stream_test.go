package e2e

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stepup-go/stepup/examples/internal/mcpclient"
	"github.com/stepup-go/stepup/examples/internal/mcpserver"
)

// The standalone SSE stream (GET, protocol 2025-11-25) opened with the
// first token keeps delivering the server's notifications after a step-up
// replaced that token: the step-up neither breaks nor reopens it.
func TestStandaloneStreamAcrossStepUp(t *testing.T) {
	forEach(t, func(t *testing.T, sdk mcpclient.SDK, srv serverKind) {
		w := newWorld(t, sdk, srv)
		changed := make(chan struct{}, 16)
		s := w.connect(mcpclient.Options{
			ProtocolVersion:   mcpclient.Legacy,
			OnToolListChanged: func() { changed <- struct{}{} },
		})
		// The go-sdk client opens its stream in the background: a tool
		// list change reaches it only once the stream is there.
		waitStream := func() {
			t.Helper()
			w.mcp.Notify()
			select {
			case <-changed:
			case <-w.ctx.Done():
				t.Fatal("no notification on the standalone stream")
			}
		}
		waitStream()

		_, err := s.CallTool(w.ctx, mcpserver.ToolWrite, map[string]any{"text": "x"})
		require.NoError(t, err)
		require.Equal(t, 2, w.as.Stats().ConsentPrompts)

		waitStream()
		assert.Equal(t, 1, w.mcp.Counts().Streams, "the stream was opened once and never reopened")
	})
}
