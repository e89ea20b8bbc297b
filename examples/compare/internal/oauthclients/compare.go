// Package compare measures stepup against the go-sdk's own OAuth client
// (auth.AuthorizationCodeHandler as the StreamableClientTransport's
// OAuthHandler) on the same MCP servers and the same authorization server:
// how many consent prompts and token requests each needs for the seed
// scenario and for tool calls that hit one 403 at once. Both use the go-sdk
// MCP client and a headless authorization code flow; only the OAuth client
// differs. The numbers come from the authorization server's counters.
package oauthclients

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"

	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/modelcontextprotocol/go-sdk/oauthex"

	"github.com/stepup-go/stepup"
	"github.com/stepup-go/stepup/authcode"
	"github.com/stepup-go/stepup/discovery"
	"github.com/stepup-go/stepup/examples/internal/mcpclient"
	"github.com/stepup-go/stepup/examples/internal/mcpserver"
	"github.com/stepup-go/stepup/internal/oauthtest"
)

// Client is an OAuth client under comparison.
type Client string

// The clients.
const (
	Stepup Client = "stepup"
	GoSDK  Client = "go-sdk AuthorizationCodeHandler"
)

// Clients lists the clients, stepup first.
var Clients = []Client{Stepup, GoSDK}

// Server is a server variant: the go-sdk's challenges as they are, or with
// RFC 6750 error codes.
type Server struct {
	Name       string
	Challenges mcpserver.Challenges
}

// Servers lists the server variants.
var Servers = []Server{
	{"go-sdk server, RequireBearerToken as is (403 without error code)", mcpserver.GoSDKChallenges},
	{`go-sdk server, RFC 6750 challenges (403 error="insufficient_scope")`, mcpserver.RFC6750Challenges},
}

// Scenario is what the client does after it connected (and logged in).
type Scenario struct {
	Name string
	// Seed: read_notes, write_note (the 403), read_notes, one after the
	// other. Otherwise Concurrent calls of write_note at once.
	Seed       bool
	Concurrent int
}

// Scenarios are the table's rows.
var Scenarios = []Scenario{
	{Name: "seed scenario", Seed: true},
	{Name: "1 call hits the 403", Concurrent: 1},
	{Name: "20 concurrent calls hit one 403", Concurrent: 20},
	{Name: "200 concurrent calls hit one 403", Concurrent: 200},
}

// Result is one run.
type Result struct {
	Scenario Scenario
	Server   Server
	Client   Client
	// Calls and OK count the tool calls made after connecting and those
	// that succeeded.
	Calls, OK int
	// FirstErr is the first failed call's error.
	FirstErr error
	// Stats are the authorization server's counters after the run, the
	// login at connection included.
	Stats oauthtest.Stats
}

// Run runs scenario with client against a fresh server and authorization
// server.
func Run(ctx context.Context, sc Scenario, srv Server, client Client) (*Result, error) {
	as := oauthtest.New(oauthtest.Config{IssParameter: true})
	defer as.Close()
	ms := mcpserver.NewGoSDK(mcpserver.Config{AuthServer: as, Challenges: srv.Challenges})
	defer ms.Close()
	base := &http.Transport{MaxIdleConnsPerHost: 256}
	defer base.CloseIdleConnections()
	disc := &discovery.Client{} // stepup's requests to the authorization server
	defer disc.CloseIdleConnections()

	session, err := connect(ctx, client, ms.URL, base, disc)
	if err != nil {
		return nil, fmt.Errorf("%s: connect: %w", client, err)
	}
	defer session.Close()
	res := &Result{Scenario: sc, Server: srv, Client: client}
	if sc.Seed {
		res.record(session.CallTool(ctx, mcpserver.ToolRead, nil))
		res.record(session.CallTool(ctx, mcpserver.ToolWrite, map[string]any{"text": "seed"}))
		res.record(session.CallTool(ctx, mcpserver.ToolRead, nil))
	} else {
		if _, err := session.CallTool(ctx, mcpserver.ToolRead, nil); err != nil {
			return nil, fmt.Errorf("%s: first call: %w", client, err)
		}
		res.writeConcurrently(ctx, session, sc.Concurrent)
	}
	res.Stats = as.Stats()
	return res, nil
}

// writeConcurrently calls write_note n times at once and records the
// outcomes.
func (r *Result) writeConcurrently(ctx context.Context, session mcpclient.Session, n int) {
	var mu sync.Mutex
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			out, err := session.CallTool(ctx, mcpserver.ToolWrite, map[string]any{"text": fmt.Sprint(i)})
			mu.Lock()
			defer mu.Unlock()
			r.record(out, err)
		}()
	}
	close(start)
	wg.Wait()
}

func (r *Result) record(_ string, err error) {
	r.Calls++
	if err == nil {
		r.OK++
	} else if r.FirstErr == nil {
		r.FirstErr = err
	}
}

// connect connects the go-sdk MCP client with client's OAuth: stepup's
// Transport with the authcode Escalator, whose requests go through disc,
// or the go-sdk's handler.
func connect(ctx context.Context, client Client, url string, base http.RoundTripper, disc *discovery.Client) (mcpclient.Session, error) {
	plain := &http.Client{Transport: base}
	switch client {
	case Stepup:
		ts, err := stepup.NewTokenSource(url, nil, stepup.WithEscalator(&authcode.Escalator{Receiver: &authcode.Headless{}, Discovery: disc}))
		if err != nil {
			return nil, err
		}
		hc := &http.Client{Transport: &stepup.Transport{
			Base: base, Source: ts,
		}}
		return mcpclient.Connect(ctx, mcpclient.GoSDK, url, hc, mcpclient.Options{})
	case GoSDK:
		return connectGoSDKHandler(ctx, url, plain)
	}
	return nil, fmt.Errorf("unknown client %q", client)
}

// connectGoSDKHandler connects with auth.AuthorizationCodeHandler, set up
// as its docs say for a CLI: dynamic registration of a public client, a
// loopback redirect URI, and a fetcher that reads the code from the
// authorization server's redirect with authcode.Headless, as the stepup
// side does. The handler checks state and iss itself.
func connectGoSDKHandler(ctx context.Context, url string, plain *http.Client) (mcpclient.Session, error) {
	const redirect = authcode.DefaultHeadlessRedirectURI
	headless := &authcode.Headless{Client: plain, RedirectURI: redirect}
	h, err := auth.NewAuthorizationCodeHandler(&auth.AuthorizationCodeHandlerConfig{
		DynamicClientRegistrationConfig: &auth.DynamicClientRegistrationConfig{Metadata: &oauthex.ClientRegistrationMetadata{
			RedirectURIs:            []string{redirect},
			TokenEndpointAuthMethod: "none",
			GrantTypes:              []string{"authorization_code", "refresh_token"},
			ClientName:              "go-sdk comparison client",
		}},
		RedirectURL: redirect,
		AuthorizationCodeFetcher: func(ctx context.Context, args *auth.AuthorizationArgs) (*auth.AuthorizationResult, error) {
			q, err := headless.Receive(ctx, func(context.Context, string) (*authcode.AuthorizationRequest, error) {
				return &authcode.AuthorizationRequest{URL: args.URL}, nil
			})
			if err != nil {
				return nil, err
			}
			if e := q.Get("error"); e != "" {
				return nil, fmt.Errorf("authorization response: %s", e)
			}
			return &auth.AuthorizationResult{Code: q.Get("code"), State: q.Get("state"), Iss: q.Get("iss")}, nil
		},
		Client: plain,
	})
	if err != nil {
		return nil, err
	}
	return connectGoSDK(ctx, "go-sdk-oauth", url, plain, h)
}

// connectGoSDK connects the go-sdk MCP client named name to url, with h
// as its own OAuth handler and no stepup in its HTTP client.
func connectGoSDK(ctx context.Context, name, url string, plain *http.Client, h auth.OAuthHandler) (mcpclient.Session, error) {
	c := mcp.NewClient(&mcp.Implementation{Name: name, Version: "1.0.0"}, nil)
	cs, err := c.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: url, HTTPClient: plain, OAuthHandler: h}, nil)
	if err != nil {
		return nil, err
	}
	return mcpclient.WrapGoSDK(cs), nil
}

// Table renders results as a markdown table.
func Table(results []*Result) string {
	var b strings.Builder
	b.WriteString("| scenario | server | OAuth client | consent prompts | token requests: code / refresh | tool calls that succeeded |\n")
	b.WriteString("|---|---|---|---:|---:|---:|\n")
	for _, r := range results {
		fmt.Fprintf(&b, "| %s | %s | %s | %d | %d / %d | %d of %d |\n",
			r.Scenario.Name, r.Server.Name, r.Client, r.Stats.ConsentPrompts,
			r.Stats.CodeExchanges(), r.Stats.Refreshes(), r.OK, r.Calls)
	}
	return b.String()
}
