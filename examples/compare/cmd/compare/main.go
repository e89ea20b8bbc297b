// Command compare measures stepup against the go-sdk's own OAuth client,
// auth.AuthorizationCodeHandler, on the same MCP servers and authorization
// server, and prints a markdown table of the consent prompts and token
// requests each needed: for the seed scenario, and for 1, 20 and 200
// concurrent tool calls that hit one 403. Every number comes from the runs
// it makes; docs/comparison.md shows its output.
//
// With -grants it measures the grants without a person instead: package
// grants' ClientCredentials and Enterprise Escalators against the go-sdk's
// extauth handlers, for the seed scenario, 20 concurrent calls that hit one
// 403, and an expired token; docs/grants.md shows that output.
//
//	go run ./examples/compare/cmd/compare [-grants]
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"time"

	"github.com/stepup-go/stepup/examples/compare/internal/oauthclients"
)

func main() {
	log.SetFlags(0)
	grants := flag.Bool("grants", false, "compare the grants without a person (client credentials, enterprise-managed authorization)")
	flag.Parse()
	do := run
	if *grants {
		do = runGrants
	}
	if err := do(os.Stdout); err != nil {
		log.Fatal(err)
	}
}

func run(out io.Writer) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var results []*oauthclients.Result
	for _, srv := range oauthclients.Servers {
		for _, sc := range oauthclients.Scenarios {
			for _, client := range oauthclients.Clients {
				r, err := oauthclients.Run(ctx, sc, srv, client)
				if err != nil {
					return err
				}
				results = append(results, r)
			}
		}
	}
	fmt.Fprint(out, oauthclients.Table(results))
	fmt.Fprintln(out)
	fmt.Fprintln(out, "Both columns use the go-sdk MCP client, the same loopback authorization server (which counts the prompts and token requests) and a headless authorization code flow; the login at connection counts as one prompt and one code exchange.")
	return nil
}

// runGrants prints the tables of package grants' Escalators against the
// go-sdk's extauth handlers.
func runGrants(out io.Writer) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var cc []*oauthclients.Result
	var ent []*oauthclients.EnterpriseResult
	for _, srv := range oauthclients.Servers {
		for _, sc := range oauthclients.GrantScenarios {
			for _, client := range oauthclients.ClientCredentialsClients {
				r, err := oauthclients.RunClientCredentials(ctx, sc, srv, client)
				if err != nil {
					return fmt.Errorf("%s, %s, %s: %w", sc.Name, srv.Name, client, err)
				}
				cc = append(cc, r)
			}
			for _, client := range oauthclients.EnterpriseClients {
				r, err := oauthclients.RunEnterprise(ctx, sc, srv, client)
				if err != nil {
					return fmt.Errorf("%s, %s, %s: %w", sc.Name, srv.Name, client, err)
				}
				ent = append(ent, r)
			}
		}
	}
	fmt.Fprintln(out, "Client credentials, `grants.ClientCredentials` and `extauth.ClientCredentialsHandler`:")
	fmt.Fprintln(out)
	fmt.Fprint(out, oauthclients.ClientCredentialsTable(cc))
	fmt.Fprintln(out)
	fmt.Fprintln(out, "Enterprise-managed authorization, `grants.Enterprise` and `extauth.EnterpriseHandler` (configured with the scopes of the server's 401, as its `MCPScopes`):")
	fmt.Fprintln(out)
	fmt.Fprint(out, oauthclients.EnterpriseTable(ent))
	return nil
}
