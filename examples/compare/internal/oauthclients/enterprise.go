package oauthclients

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/modelcontextprotocol/go-sdk/auth/extauth"
	"github.com/modelcontextprotocol/go-sdk/oauthex"
	"golang.org/x/oauth2"

	"github.com/stepup-go/stepup"
	"github.com/stepup-go/stepup/discovery"
	"github.com/stepup-go/stepup/examples/internal/idp"
	"github.com/stepup-go/stepup/examples/internal/mcpclient"
	"github.com/stepup-go/stepup/examples/internal/mcpserver"
	"github.com/stepup-go/stepup/grants"
	"github.com/stepup-go/stepup/internal/oauthtest"
)

// The enterprise-managed authorization clients under comparison: stepup's
// grants.Enterprise in a stepup.Transport, and the go-sdk's
// extauth.EnterpriseHandler as the OAuthHandler. Both use the go-sdk MCP
// client, the same IdP and the same ID token.
const (
	StepupEnterprise Client = "stepup grants.Enterprise"
	GoSDKEnterprise  Client = "go-sdk extauth.EnterpriseHandler"
)

// EnterpriseClients lists them, stepup first.
var EnterpriseClients = []Client{StepupEnterprise, GoSDKEnterprise}

// The client's identifiers at the IdP and at the authorization server.
const (
	idpClientID = "mcp-client-at-the-idp"
	xaaClientID = "mcp-client"
	xaaSecret   = "mcp-client-secret"
)

// EnterpriseResult is a run, with the IdP's count of token exchanges.
type EnterpriseResult struct {
	Result
	Exchanges int
}

// RunEnterprise runs sc with client against a fresh IdP, authorization
// server and MCP server.
func RunEnterprise(ctx context.Context, sc GrantScenario, srv Server, client Client) (*EnterpriseResult, error) {
	if raceDetector && client == GoSDKEnterprise && sc.Concurrent > 1 {
		return nil, ErrRacy
	}
	as := oauthtest.New(oauthtest.Config{IssParameter: true, Clients: []oauthtest.Client{{ID: xaaClientID, Secret: xaaSecret, AuthMethod: "client_secret_post"}}})
	defer as.Close()
	ip, err := idp.New(idp.Config{ClientID: idpClientID, Clients: map[string]string{as.URL: xaaClientID}})
	if err != nil {
		return nil, err
	}
	defer ip.Close()
	as.TrustIDJAGIssuer(ip.URL, ip.PublicKey())
	ms := mcpserver.NewGoSDK(mcpserver.Config{AuthServer: as, Challenges: srv.Challenges})
	defer ms.Close()
	idToken, err := ip.IDToken("alice@example.com", time.Hour)
	if err != nil {
		return nil, err
	}
	base := &http.Transport{MaxIdleConnsPerHost: 64}
	defer base.CloseIdleConnections()
	disc := &discovery.Client{}
	defer disc.CloseIdleConnections()

	session, err := connectEnterprise(ctx, client, ms.URL, as.URL, ip.URL, idToken, base, disc)
	if err != nil {
		return nil, fmt.Errorf("%s: connect: %w", client, err)
	}
	defer session.Close()
	res := &EnterpriseResult{Result: Result{Server: srv, Client: client, Scenario: Scenario{Name: sc.Name}}}
	if err := res.play(ctx, sc, session, as); err != nil {
		return nil, fmt.Errorf("%s: %w", client, err)
	}
	res.Stats = as.Stats()
	res.Exchanges = ip.Exchanges()
	return res, nil
}

func connectEnterprise(ctx context.Context, client Client, url, issuer, idpURL, idToken string, base http.RoundTripper, disc *discovery.Client) (mcpclient.Session, error) {
	switch client {
	case StepupEnterprise:
		ts, err := stepup.NewTokenSource(url, nil, stepup.WithEscalator(&grants.Enterprise{
			IDToken:   func(context.Context) (string, error) { return idToken, nil },
			IdPIssuer: idpURL,
			IdPClient: grants.PublicClient{ClientID: idpClientID},
			Client:    grants.ClientSecret{ClientID: xaaClientID, Secret: xaaSecret, Method: grants.MethodPost},
			Discovery: disc,
		}))
		if err != nil {
			return nil, err
		}
		hc := &http.Client{Transport: &stepup.Transport{
			Base: base, Source: ts,
		}}
		return mcpclient.Connect(ctx, mcpclient.GoSDK, url, hc, mcpclient.Options{})
	case GoSDKEnterprise:
		plain := &http.Client{Transport: base}
		h, err := extauth.NewEnterpriseHandler(&extauth.EnterpriseHandlerConfig{
			IdPIssuerURL:     idpURL,
			IdPCredentials:   &oauthex.ClientCredentials{ClientID: idpClientID},
			MCPAuthServerURL: issuer,
			MCPResourceURI:   url,
			MCPCredentials:   &oauthex.ClientCredentials{ClientID: xaaClientID, ClientSecretAuth: &oauthex.ClientSecretAuth{ClientSecret: xaaSecret}},
			// The scopes the server's 401 asks for, as its docs say to
			// configure them.
			MCPScopes: []string{mcpserver.ScopeRead, mcpserver.ScopeOffline},
			IDTokenFetcher: func(context.Context) (*oauth2.Token, error) {
				return (&oauth2.Token{}).WithExtra(map[string]any{"id_token": idToken}), nil
			},
			HTTPClient: plain,
		})
		if err != nil {
			return nil, err
		}
		return connectGoSDK(ctx, "go-sdk-enterprise", url, plain, h)
	}
	return nil, fmt.Errorf("unknown client %q", client)
}

// EnterpriseTable renders enterprise results as a markdown table: the
// token exchanges at the IdP and the JWT bearer requests at the
// authorization server each client made (the connection's included), and
// the calls that went through.
func EnterpriseTable(results []*EnterpriseResult) string {
	var b strings.Builder
	b.WriteString("| scenario | server | OAuth client | exchanges at the IdP | JWT bearer requests / refresh | tool calls that succeeded | first failure |\n")
	b.WriteString("|---|---|---|---:|---:|---:|---|\n")
	for _, r := range results {
		fmt.Fprintf(&b, "| %s | %s | %s | %d | %d / %d | %d of %d | %s |\n",
			r.Scenario.Name, r.Server.Name, r.Client, r.Exchanges, r.Stats.TokenRequests["urn:ietf:params:oauth:grant-type:jwt-bearer"],
			r.Stats.Refreshes(), r.OK, r.Calls, failureText(r.FirstErr))
	}
	return b.String()
}
