package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stepup-go/stepup/authcode"
)

// The demo is the seed scenario: the 403 insufficient_scope, shown as
// received, is answered by one consent for the union of the scopes, never
// by a refresh, and the call is replayed on the same session.
func TestDemo(t *testing.T) {
	var out strings.Builder
	require.NoError(t, run(&out, options{}), out.String())
	for _, want := range []string{
		`server → client: 401 Unauthorized`,
		`WWW-Authenticate: Bearer error="insufficient_scope", scope="mcp:write", resource_metadata="http://127.0.0.1:`,
		`stepup: insufficient scope → Escalator, asking for "mcp:read offline_access mcp:write"`,
		`authorization server: the user consents to "mcp:read offline_access mcp:write"`,
		`tools/call write_note, with a token`,
		`result: saved: hello from the demo`,
		"Consent prompts: 2. Token requests: 2 authorization_code, 0 refresh_token.",
	} {
		assert.Contains(t, out.String(), want)
	}
}

// The guard mode: the user declines, the call fails with
// stepup.ErrDeclined after one prompt, a second try fails with no prompt,
// and the session goes on.
func TestDemoDecline(t *testing.T) {
	var out strings.Builder
	require.NoError(t, run(&out, options{decline: true}), out.String())
	text := out.String()
	for _, want := range []string{
		`WWW-Authenticate: Bearer error="insufficient_scope", scope="mcp:write"`,
		`authorization server: the user DECLINES "mcp:read offline_access mcp:write"`,
		"consent prompts for this call: 1\n",
		"4. The client tries write_note again.",
		"consent prompts for this call: 0\n",
		"5. The session goes on serving calls that need no new scope.\n",
		"Consent prompts: 2. Token requests: 1 authorization_code, 0 refresh_token.",
	} {
		assert.Contains(t, text, want)
	}
	assert.Equal(t, 2, strings.Count(text, "errors.Is(err, stepup.ErrDeclined) = true"), "both write_note calls fail with ErrDeclined")
	assert.Equal(t, 1, strings.Count(text, "the user DECLINES"), "one prompt for both calls")
	assert.Equal(t, 2, strings.Count(text, "server → client: 403 Forbidden"))
}

// The interactive mode, with a person who reads the consent page and
// presses a button: the authorization code comes back through the loopback
// receiver.
func TestDemoInteractive(t *testing.T) {
	for _, decline := range []bool{false, true} {
		t.Run(map[bool]string{false: "approve", true: "decline"}[decline], func(t *testing.T) {
			var out strings.Builder
			o := options{interactive: true, decline: decline, open: person(t, decline)}
			require.NoError(t, run(&out, o), out.String())
			assert.Contains(t, out.String(), "Consent prompts: 2.")
		})
	}
}

// person returns an opener that plays the user at the consent page: it
// approves everything, or declines a request that asks for mcp:write.
func person(t *testing.T, declineWrite bool) authcode.OpenFunc {
	return func(ctx context.Context, authURL string) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, authURL, nil)
		if err != nil {
			return err
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		page, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return err
		}
		id := regexp.MustCompile(`name="id" value="([^"]+)"`).FindSubmatch(page)
		if id == nil {
			return fmt.Errorf("no consent form in %s", page)
		}
		form := url.Values{"id": {string(id[1])}, "decision": {"approve"}}
		for _, m := range regexp.MustCompile(`name="scope" value="([^"]+)"`).FindAllSubmatch(page, -1) {
			form.Add("scope", string(m[1]))
			if declineWrite && string(m[1]) == "mcp:write" {
				form.Set("decision", "decline")
			}
		}
		u, _ := url.Parse(authURL)
		// The browser follows the redirect to the loopback receiver.
		resp, err = http.PostForm(u.Scheme+"://"+u.Host+"/authorize/decision", form)
		if err != nil {
			return err
		}
		resp.Body.Close()
		t.Logf("consent page answered %v; browser ended at %s", form["decision"], resp.Request.URL.Host)
		return nil
	}
}

// With placeholder ports the transcript names no port a run happened to
// get, so that docs/demo.md can be compared with a new run.
func TestDemoPlaceholderPorts(t *testing.T) {
	var out strings.Builder
	require.NoError(t, run(&out, options{placeholderPorts: true}), out.String())
	text := out.String()
	assert.NotRegexp(t, regexp.MustCompile(`127\.0\.0\.1:[0-9]`), text)
	assert.Contains(t, text, "authorization server  http://127.0.0.1:AS_PORT  ")
	assert.Contains(t, text, `resource_metadata="http://127.0.0.1:MCP_PORT/.well-known/oauth-protected-resource/mcp"`)
}
