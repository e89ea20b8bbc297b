package oauthclients

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/modelcontextprotocol/go-sdk/auth/extauth"
	"github.com/modelcontextprotocol/go-sdk/oauthex"

	"github.com/stepup-go/stepup"
	"github.com/stepup-go/stepup/discovery"
	"github.com/stepup-go/stepup/examples/internal/mcpclient"
	"github.com/stepup-go/stepup/examples/internal/mcpserver"
	"github.com/stepup-go/stepup/grants"
	"github.com/stepup-go/stepup/internal/oauthtest"
)

// The client credentials clients under comparison: stepup's
// grants.ClientCredentials in a stepup.Transport, and the go-sdk's
// extauth.ClientCredentialsHandler as the StreamableClientTransport's
// OAuthHandler. Both use the go-sdk MCP client.
const (
	StepupClientCredentials Client = "stepup grants.ClientCredentials"
	GoSDKClientCredentials  Client = "go-sdk extauth.ClientCredentialsHandler"
)

// ClientCredentialsClients lists them, stepup first.
var ClientCredentialsClients = []Client{StepupClientCredentials, GoSDKClientCredentials}

// GrantScenario is what a client credentials client does after it
// connected (its first token).
type GrantScenario struct {
	Name string
	// Seed: read_notes, write_note (the 403), read_notes. Else
	// Concurrent calls of write_note at once, or with Expire, every
	// access token expired at the server, then one read_notes.
	Seed       bool
	Concurrent int
	Expire     bool
}

// GrantScenarios are the client credentials table's rows.
var GrantScenarios = []GrantScenario{
	{Name: "seed scenario (a 403 for mcp:write)", Seed: true},
	{Name: "20 concurrent calls hit one 403", Concurrent: 20},
	{Name: "the access token expires, then a call", Expire: true},
}

// The client registered for the comparison. It authenticates with
// client_secret_post, which the go-sdk handler prefers when the server
// lists it; stepup is told to.
const (
	ccClientID = "reports-job"
	ccSecret   = "reports-job-secret"
)

// ErrRacy says that a run was not made: under the race detector, a go-sdk
// extauth handler's concurrent Authorize calls are reported as data races
// (it sets its token source, and granted scopes, unsynchronized), which
// would fail the test run.
var ErrRacy = errors.New("not run under the race detector: the extauth handler's Authorize writes its fields unsynchronized when concurrent calls draw a 403")

// RunClientCredentials runs sc with client against a fresh server and
// authorization server.
func RunClientCredentials(ctx context.Context, sc GrantScenario, srv Server, client Client) (*Result, error) {
	if raceDetector && client == GoSDKClientCredentials && sc.Concurrent > 1 {
		return nil, ErrRacy
	}
	as := oauthtest.New(oauthtest.Config{IssParameter: true, Clients: []oauthtest.Client{{ID: ccClientID, Secret: ccSecret, AuthMethod: "client_secret_post"}}})
	defer as.Close()
	ms := mcpserver.NewGoSDK(mcpserver.Config{AuthServer: as, Challenges: srv.Challenges})
	defer ms.Close()
	base := &http.Transport{MaxIdleConnsPerHost: 64}
	defer base.CloseIdleConnections()
	disc := &discovery.Client{}
	defer disc.CloseIdleConnections()

	session, err := connectClientCredentials(ctx, client, ms.URL, base, disc)
	if err != nil {
		return nil, fmt.Errorf("%s: connect: %w", client, err)
	}
	defer session.Close()
	res := &Result{Server: srv, Client: client, Scenario: Scenario{Name: sc.Name}}
	if err := res.play(ctx, sc, session, as); err != nil {
		return nil, fmt.Errorf("%s: %w", client, err)
	}
	res.Stats = as.Stats()
	return res, nil
}

// play makes sc's calls on session, expiring as's access tokens where sc
// says so, and records them.
func (r *Result) play(ctx context.Context, sc GrantScenario, session mcpclient.Session, as *oauthtest.Server) error {
	if sc.Seed {
		r.record(session.CallTool(ctx, mcpserver.ToolRead, nil))
		r.record(session.CallTool(ctx, mcpserver.ToolWrite, map[string]any{"text": "seed"}))
		r.record(session.CallTool(ctx, mcpserver.ToolRead, nil))
		return nil
	}
	if _, err := session.CallTool(ctx, mcpserver.ToolRead, nil); err != nil {
		return fmt.Errorf("first call: %w", err)
	}
	if sc.Expire {
		as.ExpireAccessTokens()
		r.record(session.CallTool(ctx, mcpserver.ToolRead, nil))
		return nil
	}
	r.writeConcurrently(ctx, session, sc.Concurrent)
	return nil
}

func connectClientCredentials(ctx context.Context, client Client, url string, base http.RoundTripper, disc *discovery.Client) (mcpclient.Session, error) {
	switch client {
	case StepupClientCredentials:
		ts, err := stepup.NewTokenSource(url, nil, stepup.WithEscalator(&grants.ClientCredentials{
			Auth:      grants.ClientSecret{ClientID: ccClientID, Secret: ccSecret, Method: grants.MethodPost},
			Discovery: disc,
		}))
		if err != nil {
			return nil, err
		}
		hc := &http.Client{Transport: &stepup.Transport{
			Base: base, Source: ts,
		}}
		return mcpclient.Connect(ctx, mcpclient.GoSDK, url, hc, mcpclient.Options{})
	case GoSDKClientCredentials:
		plain := &http.Client{Transport: base}
		h, err := extauth.NewClientCredentialsHandler(&extauth.ClientCredentialsHandlerConfig{
			Credentials: &oauthex.ClientCredentials{ClientID: ccClientID, ClientSecretAuth: &oauthex.ClientSecretAuth{ClientSecret: ccSecret}},
			HTTPClient:  plain,
		})
		if err != nil {
			return nil, err
		}
		return connectGoSDK(ctx, "go-sdk-client-credentials", url, plain, h)
	}
	return nil, fmt.Errorf("unknown client %q", client)
}

// ClientCredentialsTable renders client credentials results as a markdown
// table: the token requests each client made (the first one, at
// connection, included) and the calls that went through.
func ClientCredentialsTable(results []*Result) string {
	var b strings.Builder
	b.WriteString("| scenario | server | OAuth client | token requests: client_credentials / refresh | tool calls that succeeded | first failure |\n")
	b.WriteString("|---|---|---|---:|---:|---|\n")
	for _, r := range results {
		fmt.Fprintf(&b, "| %s | %s | %s | %d / %d | %d of %d | %s |\n",
			r.Scenario.Name, r.Server.Name, r.Client, r.Stats.TokenRequests["client_credentials"],
			r.Stats.Refreshes(), r.OK, r.Calls, failureText(r.FirstErr))
	}
	return b.String()
}

// failureText is err for a table cell: clipped, its pipes escaped.
func failureText(err error) string {
	if err == nil {
		return ""
	}
	s := err.Error()
	if len(s) > 90 {
		s = s[:90] + "…"
	}
	return strings.ReplaceAll(s, "|", `\|`)
}
