// Command compare measures stepup against the go-sdk's own OAuth client,
// auth.AuthorizationCodeHandler, on the same MCP servers and authorization
// server, and prints a markdown table of the consent prompts and token
// requests each needed: for the seed scenario, and for 1, 20 and 200
// concurrent tool calls that hit one 403. Every number comes from the runs
// it makes; docs/comparison.md shows its output.
//
//	go run ./examples/compare/cmd/compare
package main

import (
	"context"
	"fmt"
	"io"
	"log"
	"os"
	"time"

	"github.com/stepup-go/stepup/examples/compare/internal/oauthclients"
)

func main() {
	log.SetFlags(0)
	if err := run(os.Stdout); err != nil {
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
