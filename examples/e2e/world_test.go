package e2e

import (
	"context"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stepup-go/stepup"
	"github.com/stepup-go/stepup/authcode"
	"github.com/stepup-go/stepup/discovery"
	"github.com/stepup-go/stepup/examples/internal/mcpclient"
	"github.com/stepup-go/stepup/examples/internal/mcpserver"
	"github.com/stepup-go/stepup/internal/oauthtest"
)

// testTimeout bounds every test: a hang fails instead of stalling the run.
const testTimeout = 60 * time.Second

// serverKind is an MCP server of the seed scenario.
type serverKind struct {
	name       string
	start      func(mcpserver.Config) *mcpserver.Server
	challenges mcpserver.Challenges
}

var servers = []serverKind{
	{"gosdk-server", mcpserver.NewGoSDK, mcpserver.GoSDKChallenges},
	{"gosdk-server-rfc6750", mcpserver.NewGoSDK, mcpserver.RFC6750Challenges},
	{"mcpgo-server", mcpserver.NewMCPGo, mcpserver.RFC6750Challenges},
}

// forEach runs test for each client SDK against each server.
func forEach(t *testing.T, test func(t *testing.T, sdk mcpclient.SDK, srv serverKind)) {
	for _, srv := range servers {
		for _, sdk := range mcpclient.SDKs {
			t.Run(string(sdk)+"/"+srv.name, func(t *testing.T) { test(t, sdk, srv) })
		}
	}
}

// world is one run of the seed scenario: an authorization server, an MCP
// server, and a client whose HTTP client is stepup's.
type world struct {
	t   *testing.T
	ctx context.Context
	as  *oauthtest.Server
	mcp *mcpserver.Server
	ts  *stepup.TokenSource
	hc  *http.Client
	sdk mcpclient.SDK

	mu         sync.Mutex
	authorized [][]string // the scopes of each authorization request, in order
}

// setup configures a world before it starts.
type setup struct {
	serverConfig func(*mcpserver.Config)
}

func newWorld(t *testing.T, sdk mcpclient.SDK, srv serverKind, opts ...func(*setup)) *world {
	t.Helper()
	var st setup
	for _, o := range opts {
		o(&st)
	}
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	w := &world{t: t, ctx: ctx, sdk: sdk}
	w.as = oauthtest.New(oauthtest.Config{IssParameter: true, Observe: w.observe})
	t.Cleanup(w.as.Close)
	cfg := mcpserver.Config{AuthServer: w.as, Challenges: srv.challenges}
	if st.serverConfig != nil {
		st.serverConfig(&cfg)
	}
	w.mcp = srv.start(cfg)
	t.Cleanup(w.mcp.Close)

	// The MCP requests and the Escalator's (metadata, registration,
	// authorization, token) each on their own connections, closed at the
	// end so that no idle connection outlives the test (goleak).
	base := &http.Transport{}
	t.Cleanup(base.CloseIdleConnections)
	disc := &discovery.Client{}
	t.Cleanup(disc.CloseIdleConnections)
	ts, err := stepup.NewTokenSource(w.mcp.URL, nil, stepup.WithEscalator(&authcode.Escalator{Receiver: &authcode.Headless{}, Discovery: disc}))
	require.NoError(t, err)
	w.ts = ts
	w.hc = &http.Client{Transport: &stepup.Transport{
		Base:   base,
		Source: ts,
	}}
	return w
}

func (w *world) observe(e oauthtest.Event) {
	if e.Kind != "authorize" {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.authorized = append(w.authorized, slices.Clone(e.Scopes))
}

// authorizations returns the scopes of each authorization request so far.
func (w *world) authorizations() [][]string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.authorized)
}

// protocolFor returns the protocol version to pin: mcp-go v1.2.1 against a
// stateful go-sdk server needs the 2025-11-25 handshake (see
// mcpclient.Options).
func protocolFor(sdk mcpclient.SDK, srv serverKind) string {
	if sdk == mcpclient.MCPGo && srv.name != "mcpgo-server" {
		return mcpclient.Legacy
	}
	return ""
}

// connect opens a session; it is closed when the test ends.
func (w *world) connect(opts mcpclient.Options) mcpclient.Session {
	w.t.Helper()
	s, err := mcpclient.Connect(w.ctx, w.sdk, w.mcp.URL, w.hc, opts)
	require.NoError(w.t, err, "connect")
	w.t.Cleanup(func() { _ = s.Close() })
	return s
}
