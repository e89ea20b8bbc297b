// Command demo plays the scenario stepup exists for, in one process on
// loopback: a client holds a token with a refresh token, calls a tool that
// needs a scope the token lacks, and gets 403 insufficient_scope. A refresh
// cannot widen scope (RFC 6749 §6), so stepup never tries one: it asks the
// Escalator for the scopes requested, granted and challenged, installs the
// new token and replays the call.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"

	"golang.org/x/oauth2"

	"github.com/stepup-go/stepup"
)

func main() {
	log.SetFlags(0)
	if err := run(os.Stdout); err != nil {
		log.Fatal(err)
	}
}

func run(out io.Writer) error {
	var refreshes atomic.Int32
	tokenEndpoint := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// A refresh keeps the original grant: it can never add a scope.
		refreshes.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{
			"access_token": "refreshed-read-token", "token_type": "Bearer", "expires_in": 3600, "scope": "tools:read",
		})
	}))
	defer tokenEndpoint.Close()

	mcp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
		if r.URL.Path == "/tools/custom" && tok != "write-token" {
			w.Header().Set("WWW-Authenticate", fmt.Sprintf(
				`Bearer error="insufficient_scope", scope="tools:custom", resource_metadata="http://%s/.well-known/oauth-protected-resource/mcp", error_description="Tool 'custom-tool' requires additional scope"`,
				r.Host))
			w.WriteHeader(http.StatusForbidden)
			return
		}
		fmt.Fprintf(w, "tool %s ran", r.URL.Path)
	}))
	defer mcp.Close()

	cfg := &oauth2.Config{ClientID: "demo", Endpoint: oauth2.Endpoint{TokenURL: tokenEndpoint.URL}}
	ts, err := stepup.NewTokenSource(mcp.URL+"/mcp",
		&oauth2.Token{AccessToken: "read-token", RefreshToken: "refresh-1"},
		stepup.WithOAuth2Config(cfg), stepup.WithScopes("tools:read"))
	if err != nil {
		return err
	}
	escalator := stepup.EscalatorFunc(func(ctx context.Context, req *stepup.EscalationRequest) (*stepup.Grant, error) {
		// A real Escalator runs an authorization code flow with PKCE and
		// asks the user to consent; this one consents at once.
		fmt.Fprintf(out, "Escalator: %s, asking for %q (challenged %q), metadata %s\n",
			req.Reason, req.Scopes, req.ChallengedScopes, req.ResourceMetadata)
		return &stepup.Grant{Token: &oauth2.Token{AccessToken: "write-token", RefreshToken: "refresh-2"}}, nil
	})
	client := &http.Client{Transport: &stepup.Transport{Source: ts, Escalator: escalator}}

	resp, err := client.Get(mcp.URL + "/tools/custom")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	_, granted := ts.Scopes()
	fmt.Fprintf(out, "Result: %s %s\n", resp.Status, body)
	fmt.Fprintf(out, "Granted scopes now: %q\n", granted)
	fmt.Fprintf(out, "Refresh requests sent: %d (a refresh cannot widen scope)\n", refreshes.Load())
	if resp.StatusCode != http.StatusOK || refreshes.Load() != 0 {
		return fmt.Errorf("demo: step-up did not go as it should")
	}
	return nil
}
