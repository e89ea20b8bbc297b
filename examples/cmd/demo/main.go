// Command demo shows stepup reading the challenge an MCP server sends when a
// token lacks a scope.
package main

import (
	"fmt"
	"net/http"
	"os"

	"github.com/stepup-go/stepup"
)

func main() {
	h := http.Header{}
	h.Add("WWW-Authenticate", `Bearer error="insufficient_scope", scope="files:read files:write", resource_metadata="https://mcp.example.com/.well-known/oauth-protected-resource"`)
	challenges, err := stepup.ParseChallenges(h)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	for _, c := range challenges {
		o, err := c.OAuth()
		if err != nil {
			fmt.Printf("%s: not acted on: %v\n", c.Scheme, err)
			continue
		}
		fmt.Printf("%s challenge: error=%s scope=%q resource_metadata=%s\n", o.Scheme, o.Error, o.Scope, o.ResourceMetadata)
	}
}
