package stepup_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/hashicorp/go-retryablehttp"
	"golang.org/x/oauth2"

	"github.com/stepup-go/stepup"
)

// exampleAPI is a protected resource for the examples: GET /files needs the
// token "read-token" or "write-token", GET /files/write needs "write-token"
// and answers other tokens with 403 insufficient_scope, as RFC 6750 and the
// MCP specification say.
func exampleAPI() *httptest.Server {
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
		switch {
		case tok != "read-token" && tok != "write-token":
			w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
			w.WriteHeader(http.StatusUnauthorized)
		case r.URL.Path == "/files/write" && tok != "write-token":
			w.Header().Set("WWW-Authenticate", `Bearer error="insufficient_scope", scope="files:write"`)
			w.WriteHeader(http.StatusForbidden)
		default:
			fmt.Fprintln(w, "hello from", r.URL.Path)
		}
	}))
}

// Wrap an http.Client: the Transport attaches the token to requests for the
// resource's origin, and answers its challenges.
func ExampleTransport() {
	api := exampleAPI()
	defer api.Close()

	ts, err := stepup.NewTokenSource(api.URL, &oauth2.Token{AccessToken: "read-token"})
	if err != nil {
		log.Fatal(err)
	}
	client := &http.Client{Transport: &stepup.Transport{Source: ts}}

	resp, err := client.Get(api.URL + "/files")
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	fmt.Print(resp.Status, ": ", string(body))
	// Output: 200 OK: hello from /files
}

// An Escalator answers 403 insufficient_scope with a new authorization for
// the scopes requested, granted and challenged; the Transport installs the
// token it returns and replays the request. A real Escalator runs an
// authorization code flow and asks the user.
func ExampleWithEscalator() {
	api := exampleAPI()
	defer api.Close()

	escalator := stepup.EscalatorFunc(func(ctx context.Context, req *stepup.EscalationRequest) (*stepup.Grant, error) {
		fmt.Printf("escalating (%s): requesting %q\n", req.Reason, req.Scopes)
		return &stepup.Grant{Token: &oauth2.Token{AccessToken: "write-token"}}, nil
	})
	ts, err := stepup.NewTokenSource(api.URL, &oauth2.Token{AccessToken: "read-token"},
		stepup.WithScopes("files:read"), stepup.WithEscalator(escalator))
	if err != nil {
		log.Fatal(err)
	}
	client := &http.Client{Transport: &stepup.Transport{Source: ts}}

	resp, err := client.Get(api.URL + "/files/write")
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	fmt.Print(resp.Status, ": ", string(body))
	_, granted := ts.Scopes()
	fmt.Println("granted:", granted)
	// Output:
	// escalating (insufficient scope): requesting "files:read files:write"
	// 200 OK: hello from /files/write
	// granted: files:read files:write
}

// Under go-retryablehttp, CheckRetry keeps a declined escalation from being
// retried, which would ask the user again on every attempt.
func ExampleCheckRetry() {
	api := exampleAPI()
	defer api.Close()

	asked := 0
	decline := stepup.EscalatorFunc(func(ctx context.Context, req *stepup.EscalationRequest) (*stepup.Grant, error) {
		asked++
		return nil, fmt.Errorf("the user closed the consent page: %w", stepup.ErrDeclined)
	})
	ts, err := stepup.NewTokenSource(api.URL, &oauth2.Token{AccessToken: "read-token"}, stepup.WithEscalator(decline))
	if err != nil {
		log.Fatal(err)
	}
	client := retryablehttp.NewClient()
	client.Logger = nil
	client.HTTPClient = &http.Client{Transport: &stepup.Transport{Source: ts}}
	client.CheckRetry = stepup.CheckRetry(retryablehttp.DefaultRetryPolicy)

	_, err = client.Get(api.URL + "/files/write")
	fmt.Println("declined:", errors.Is(err, stepup.ErrDeclined))
	fmt.Println("asked:", asked)
	// Output:
	// declined: true
	// asked: 1
}

// A TokenSource refreshes through an oauth2.Config, once for all the
// requests that find the token expired, with the current refresh token.
func ExampleNewTokenSource() {
	tokenEndpoint := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		fmt.Printf("refresh with %s for %s\n", r.PostForm.Get("refresh_token"), r.PostForm.Get("resource"))
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{
			"access_token": "new-token", "token_type": "Bearer", "expires_in": 3600, "scope": "files:read",
		})
	}))
	defer tokenEndpoint.Close()
	cfg := &oauth2.Config{ClientID: "cli", Endpoint: oauth2.Endpoint{TokenURL: tokenEndpoint.URL, AuthStyle: oauth2.AuthStyleInParams}}

	expired := &oauth2.Token{AccessToken: "old-token", RefreshToken: "refresh-1", Expiry: time.Now().Add(-time.Minute)}
	ts, err := stepup.NewTokenSource("https://api.example.com/mcp", expired, stepup.WithOAuth2Config(cfg))
	if err != nil {
		log.Fatal(err)
	}
	tok, err := ts.Token() // as a request finds it expired
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("access token:", tok.AccessToken)
	fmt.Println("refresh token kept:", tok.RefreshToken)
	// Output:
	// refresh with refresh-1 for https://api.example.com/mcp
	// access token: new-token
	// refresh token kept: refresh-1
}

// Parse the challenges of a response and read the OAuth view of the Bearer
// one.
func ExampleParseChallenges() {
	h := http.Header{}
	h.Add("WWW-Authenticate", `Basic realm="files"`)
	h.Add("WWW-Authenticate", `Bearer error="insufficient_scope", scope="files:read files:write", resource_metadata="https://api.example.com/.well-known/oauth-protected-resource"`)

	challenges, err := stepup.ParseChallenges(h)
	if err != nil {
		log.Fatal(err)
	}
	for _, c := range challenges {
		oc, err := c.OAuth()
		if err != nil {
			fmt.Println(c.Scheme, "skipped:", err)
			continue
		}
		fmt.Println(oc.Scheme, oc.Error, oc.Scope, oc.ResourceMetadata)
	}
	// Output:
	// Basic skipped: stepup: not an OAuth challenge
	// Bearer insufficient_scope files:read files:write https://api.example.com/.well-known/oauth-protected-resource
}
