package main

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stepup-go/stepup/authcode"
)

// The suite itself judges the client (scripts/conformance.sh); these tests
// cover what the suite cannot: the command line and the scenario context.

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"no server URL", nil, nil, "server URL is required"},
		{"unknown client", []string{"-client", "other", "http://127.0.0.1:1/mcp"}, nil, `unknown MCP client "other"`},
		{"unknown client from the environment", []string{"http://127.0.0.1:1/mcp"}, map[string]string{"MCP_CONFORMANCE_CLIENT": "x"}, `unknown MCP client "x"`},
		{"context not JSON", []string{"http://127.0.0.1:1/mcp"}, map[string]string{"MCP_CONFORMANCE_CONTEXT": "{"}, "MCP_CONFORMANCE_CONTEXT"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr strings.Builder
			assert.Equal(t, 2, run(tc.args, env(tc.env), &stdout, &stderr))
			assert.Contains(t, stderr.String(), tc.want)
			assert.Empty(t, stdout.String())
		})
	}
}

// A server that is gone fails the run with 1 and says why; the success
// line is not printed.
func TestServerUnreachable(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL + "/mcp"
	srv.Close()
	for _, sdk := range []string{"go-sdk", "mcp-go"} {
		var stdout, stderr strings.Builder
		assert.Equal(t, 1, run([]string{"-quiet", "-client", sdk, url}, env(nil), &stdout, &stderr), sdk)
		assert.Contains(t, stderr.String(), "conformance: FAILED: initialize")
		assert.NotContains(t, stdout.String(), "conformance: ok")
	}
}

// The scenario's pre-registered client is used when it names one; the
// client ID metadata document URL is the one the suite expects; the
// 2025-03-26 fallback is allowed for the backcompat scenarios.
func TestEscalatorFromContext(t *testing.T) {
	esc := newEscalator(scenarioContext{ClientID: "pre-registered-client", ClientSecret: "pre-registered-secret"})
	require.NotNil(t, esc.Client)
	assert.Equal(t, authcode.Registration{ClientID: "pre-registered-client", ClientSecret: "pre-registered-secret"}, *esc.Client)
	assert.Equal(t, "https://conformance-test.local/client-metadata.json", esc.ClientMetadataURL)
	assert.True(t, esc.AllowLegacyDiscovery)
	assert.IsType(t, &authcode.Headless{}, esc.Receiver)

	assert.Nil(t, newEscalator(scenarioContext{}).Client, "no context: a registration of its own")
}
