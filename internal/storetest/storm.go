package storetest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/stepup-go/stepup"
)

// The environment of a storm child.
const (
	envAS         = "STEPUP_STORETEST_AS"
	envRS         = "STEPUP_STORETEST_RS"
	envPath       = "STEPUP_STORETEST_PATH"
	envGoroutines = "STEPUP_STORETEST_GOROUTINES"
)

// StormResult is what one child process of a storm saw.
type StormResult struct {
	// Bodies counts the bodies of the 200 answers: "gen N".
	Bodies map[string]int `json:"bodies"`
	// Failures counts the other outcomes, by status or error text.
	Failures map[string]int `json:"failures"`
}

// Storm has procs child processes, each with one [stepup.TokenSource] and
// [stepup.Transport] sharing the store the test binary's Main opens, send
// goroutines requests each, at once, to path on as's resource (for instance "/mcp/read"),
// and returns what each saw. The children are released together once all
// are ready; within each, the goroutines start together.
func Storm(t *testing.T, as *AuthServer, procs, goroutines int, path string, env ...string) []StormResult {
	t.Helper()
	env = append(env, envAS+"="+as.URL(), envRS+"="+as.rs.URL, envPath+"="+path, envGoroutines+"="+strconv.Itoa(goroutines))
	children := StartTogether(t, procs, "storm", env...)
	results := make([]StormResult, procs)
	for i, c := range children {
		if err := json.Unmarshal([]byte(c.Expect("result")), &results[i]); err != nil {
			t.Fatalf("storetest: a storm child's result: %v", err)
		}
		c.Wait()
	}
	return results
}

// CheckStorm fails the test unless the storm's children each got
// goroutines answers "gen N" from the grant now current, after exactly
// refreshes refreshes and escalations escalations in all, and the grant
// was never revoked. It returns the counts for the test's log.
func CheckStorm(t *testing.T, as *AuthServer, results []StormResult, goroutines, refreshes, escalations int) {
	t.Helper()
	gotRefreshes, gotEscalations, revoked := as.Counts()
	want := map[string]int{"gen " + strconv.Itoa(as.Generation()): goroutines}
	for i, r := range results {
		if len(r.Failures) > 0 || !maps.Equal(r.Bodies, want) {
			t.Errorf("child %d got %v and failures %v, want %v", i, r.Bodies, r.Failures, want)
		}
	}
	if revoked {
		t.Errorf("the authorization server revoked the grant: a refresh token was used twice")
	}
	if gotRefreshes != refreshes || gotEscalations != escalations {
		t.Errorf("%d refreshes and %d escalations reached the authorization server, want %d and %d", gotRefreshes, gotEscalations, refreshes, escalations)
	}
	t.Logf("%d processes × %d goroutines: %d refresh, %d escalation, revoked %v", len(results), goroutines, gotRefreshes, gotEscalations, revoked)
}

// stormRole is a storm child: one source wired to the store, goroutines
// requests at once, their outcomes reported.
func stormRole(ctx context.Context, c *Child) error {
	asURL, rsURL, path := os.Getenv(envAS), os.Getenv(envRS), os.Getenv(envPath)
	n, err := strconv.Atoi(os.Getenv(envGoroutines))
	if err != nil {
		return fmt.Errorf("%s: %w", envGoroutines, err)
	}
	key := stepup.StoreKey{Resource: rsURL + "/mcp", Issuer: asURL}
	cfg := stormConfig(asURL)
	tr, err := newStoreTransport(ctx, c.Store, key, cfg, ConsentEscalator(asURL))
	if err != nil {
		return err
	}
	client := &http.Client{Transport: tr, Timeout: time.Minute}

	c.Say("ready")
	if err := c.Await("go"); err != nil {
		return err
	}
	res := StormResult{Bodies: map[string]int{}, Failures: map[string]int{}}
	var mu sync.Mutex
	var wg sync.WaitGroup
	start := make(chan struct{})
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			body, outcome := get(ctx, client, rsURL+path)
			mu.Lock()
			defer mu.Unlock()
			if outcome == "" {
				res.Bodies[body]++
			} else {
				res.Failures[outcome]++
			}
		}()
	}
	close(start)
	wg.Wait()
	b, err := json.Marshal(res)
	if err != nil {
		return err
	}
	c.Say("result %s", b)
	return nil
}

// get returns the body of a 200 answer to GET u, or what happened instead.
func get(ctx context.Context, client *http.Client, u string) (body, outcome string) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return "", err.Error()
	}
	resp, err := client.Do(req)
	if err != nil {
		return "", err.Error()
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<10))
	if err != nil {
		return "", err.Error()
	}
	if resp.StatusCode != http.StatusOK {
		return "", resp.Status
	}
	return string(b), ""
}

// stormConfig is the storm client's configuration at the [AuthServer] at
// asURL.
func stormConfig(asURL string) *oauth2.Config {
	return &oauth2.Config{
		ClientID:    stormClient,
		Endpoint:    oauth2.Endpoint{AuthURL: asURL + "/authorize", TokenURL: asURL + "/token", AuthStyle: oauth2.AuthStyleInParams},
		RedirectURL: stormRedirect,
	}
}

// ConsentEscalator is an [stepup.Escalator] whose user consents at once:
// it runs an authorization code flow with PKCE for the scope requested at
// the [AuthServer] at asURL, reading the code off the redirect as a
// browser would hand it to a loopback receiver.
func ConsentEscalator(asURL string) stepup.Escalator {
	return stepup.EscalatorFunc(func(ctx context.Context, req *stepup.EscalationRequest) (*stepup.Grant, error) {
		cfg := stormConfig(asURL)
		cfg.Scopes = req.Scopes
		verifier := oauth2.GenerateVerifier()
		resource := oauth2.SetAuthURLParam("resource", req.Resource)
		state := oauth2.GenerateVerifier()
		hreq, err := http.NewRequestWithContext(ctx, http.MethodGet, cfg.AuthCodeURL(state, oauth2.S256ChallengeOption(verifier), resource), nil)
		if err != nil {
			return nil, err
		}
		resp, err := http.DefaultTransport.RoundTrip(hreq) // a RoundTrip does not follow the redirect
		if err != nil {
			return nil, fmt.Errorf("authorization: %w", err)
		}
		resp.Body.Close()
		loc, err := resp.Location()
		if err != nil || loc.Query().Get("code") == "" || loc.Query().Get("state") != state {
			return nil, fmt.Errorf("authorization: %s", resp.Status)
		}
		tok, err := cfg.Exchange(ctx, loc.Query().Get("code"), oauth2.VerifierOption(verifier), resource)
		if err != nil {
			return nil, fmt.Errorf("code exchange: %w", err)
		}
		return &stepup.Grant{Token: tok, Scopes: slices.Clone(req.Scopes), Issuer: asURL}, nil
	})
}
