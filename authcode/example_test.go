package authcode_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/url"

	"github.com/stepup-go/stepup"
	"github.com/stepup-go/stepup/authcode"
)

// A command-line client of an MCP server: it starts with no token, logs
// in through the loopback receiver on the first 401, and steps up when a
// tool needs a scope its token lacks (403 insufficient_scope). The
// Escalator finds the authorization server, registers itself and redeems
// the code; the source refreshes through the client it registered.
//
// A real program sets Open to authcode.OpenBrowser (or leaves it nil to
// print the URL); here a "browser" follows the URL, and the authorization
// server, on loopback like the MCP server, consents at once.
func ExampleEscalator() {
	as := startAuthServer()
	defer as.HTTP.Close()
	mcp := startResourceServer(as)
	defer mcp.srv.Close()
	mcp.initialScope = "tools:read" // the 401's scope
	as.ScopesSupported = []string{"tools:read", "tools:write", "offline_access"}
	mcp.needs["/mcp/tools/write"] = "tools:write"

	escalator := &authcode.Escalator{
		Receiver: &authcode.Loopback{Open: func(ctx context.Context, authURL string) error {
			u, _ := url.Parse(authURL)
			fmt.Println("consent asked for:", u.Query().Get("scope"))
			return followInBrowser(ctx, authURL)
		}},
	}
	ts, err := stepup.NewTokenSource(mcp.resource, nil, stepup.WithEscalator(escalator)) // no token yet
	if err != nil {
		log.Fatal(err)
	}
	client := &http.Client{Transport: &stepup.Transport{Source: ts}}

	for _, tool := range []string{"/mcp/tools/read", "/mcp/tools/write"} {
		resp, err := client.Get(mcp.srv.URL + tool)
		if err != nil {
			log.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		fmt.Println(resp.Status, string(body))
	}
	_, granted := ts.Scopes()
	fmt.Println("granted:", granted)
	// Output:
	// consent asked for: tools:read offline_access
	// 200 OK ok /mcp/tools/read
	// consent asked for: tools:read offline_access tools:write
	// 200 OK ok /mcp/tools/write
	// granted: tools:read offline_access tools:write
}

// followInBrowser does what a browser does with an authorization URL:
// it follows the authorization server's redirect to the loopback
// receiver, which answers with a page.
func followInBrowser(ctx context.Context, authURL string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, authURL, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, err = io.Copy(io.Discard, resp.Body)
	return err
}
