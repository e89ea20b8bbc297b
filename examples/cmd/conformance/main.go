// Command conformance is the client under test of the MCP conformance
// suite (npm @modelcontextprotocol/conformance): scripts/conformance.sh
// builds it and has the suite run it once per scenario.
//
// It connects to the server URL given as its last argument over Streamable
// HTTP, initializes, lists the tools, calls test-tool with {} and exits 0;
// it exits 1 if any step fails. Authorization is stepup's alone: a
// stepup.Transport in the MCP SDK's HTTP client, with the authcode
// Escalator, which discovers the authorization server (package discovery),
// registers (or uses the pre-registered client of MCP_CONFORMANCE_CONTEXT,
// or the client ID metadata document URL the suite expects) and reads the
// code from the authorization server's redirect (authcode.Headless), or
// with the Escalator of package grants that the context of an extensions
// scenario asks for (grants.go). The SDK's own OAuth support is not used.
//
// Usage:
//
//	conformance [-client go-sdk|mcp-go] [-protocol VERSION] [-quiet] SERVER_URL
//
// The MCP client SDK is -client, else $MCP_CONFORMANCE_CLIENT, else go-sdk.
// The suite sets MCP_CONFORMANCE_SCENARIO, and MCP_CONFORMANCE_CONTEXT
// (JSON) when the scenario has data for the client.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/stepup-go/stepup"
	"github.com/stepup-go/stepup/authcode"
	"github.com/stepup-go/stepup/discovery"
	"github.com/stepup-go/stepup/dpop"
	"github.com/stepup-go/stepup/examples/internal/mcpclient"
)

// clientIDMetadataURL is the client ID metadata document URL the suite's
// auth/basic-cimd scenario expects as client_id.
const clientIDMetadataURL = "https://conformance-test.local/client-metadata.json"

// timeout stays under the suite's 30-second default per scenario, start-up
// included.
const timeout = 25 * time.Second

func main() {
	os.Exit(run(os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
}

// scenarioContext is MCP_CONFORMANCE_CONTEXT: what the scenario tells the
// client, such as a pre-registered client.
type scenarioContext struct {
	Name         string `json:"name"`
	ClientID     string `json:"client_id"`
	ClientSecret string `json:"client_secret"`
	grantContext

	// dpop turns on DPoP (RFC 9449, stepup.WithDPoP), for the suite's
	// DPoP extension scenarios (auth/dpop, auth/dpop-nonce).
	dpop bool
}

func run(args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("conformance", flag.ContinueOnError)
	fs.SetOutput(stderr)
	sdkName := fs.String("client", getenv("MCP_CONFORMANCE_CLIENT"), "MCP client SDK: go-sdk or mcp-go (default go-sdk)")
	protocol := fs.String("protocol", getenv("MCP_CONFORMANCE_PROTOCOL"), "protocol version to pin (default: the SDK's)")
	quiet := fs.Bool("quiet", false, "do not log stepup's events")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() == 0 {
		fmt.Fprintln(stderr, "conformance: the server URL is required as the last argument")
		return 2
	}
	if *sdkName == "" {
		*sdkName = string(mcpclient.GoSDK)
	}
	sdk, err := mcpclient.ParseSDK(*sdkName)
	if err != nil {
		fmt.Fprintln(stderr, "conformance:", err)
		return 2
	}
	var sc scenarioContext
	if raw := getenv("MCP_CONFORMANCE_CONTEXT"); raw != "" {
		if err := json.Unmarshal([]byte(raw), &sc); err != nil {
			fmt.Fprintln(stderr, "conformance: MCP_CONFORMANCE_CONTEXT:", err)
			return 2
		}
	}
	sc.dpop = strings.HasPrefix(getenv("MCP_CONFORMANCE_SCENARIO"), "auth/dpop")
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	if *quiet {
		logger = nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	serverURL := fs.Arg(fs.NArg() - 1)
	fmt.Fprintf(stderr, "conformance: scenario %q, client %s, server %s\n", getenv("MCP_CONFORMANCE_SCENARIO"), sdk, serverURL)
	if err := session(ctx, sdk, serverURL, *protocol, sc, logger, stdout); err != nil {
		fmt.Fprintln(stderr, "conformance: FAILED:", err)
		if errors.Is(err, stepup.ErrDeclined) {
			fmt.Fprintln(stderr, "conformance: (the authorization was declined)")
		}
		return 1
	}
	fmt.Fprintln(stdout, "conformance: ok: initialize, tools/list, tools/call test-tool")
	return 0
}

// session runs the scenario's client steps.
func session(ctx context.Context, sdk mcpclient.SDK, serverURL, protocol string, sc scenarioContext, logger *slog.Logger, stdout io.Writer) error {
	esc := newEscalator(sc)
	defer esc.Discovery.CloseIdleConnections()
	escalator, err := chooseEscalator(sc, esc, esc.Discovery)
	if err != nil {
		return err
	}
	opts := []stepup.TokenSourceOption{stepup.WithEscalator(escalator)}
	if sc.dpop {
		key, err := dpop.GenerateKey()
		if err != nil {
			return err
		}
		opts = append(opts, stepup.WithDPoP(key))
	}
	ts, err := stepup.NewTokenSource(serverURL, nil, opts...)
	if err != nil {
		return err
	}
	hc := &http.Client{Transport: &stepup.Transport{
		Source: ts,
		Logger: logger,
	}}
	s, err := mcpclient.Connect(ctx, sdk, serverURL, hc, mcpclient.Options{ProtocolVersion: protocol})
	if err != nil {
		return fmt.Errorf("initialize: %w", err)
	}
	defer s.Close()
	tools, err := s.ListTools(ctx)
	if err != nil {
		return fmt.Errorf("tools/list: %w", err)
	}
	fmt.Fprintf(stdout, "tools: %q\n", tools)
	out, err := s.CallTool(ctx, "test-tool", nil)
	if err != nil {
		return fmt.Errorf("tools/call test-tool: %w", err)
	}
	fmt.Fprintf(stdout, "test-tool: %s\n", out)
	return nil
}

// newEscalator returns the authcode Escalator for the suite: the
// pre-registered client of the scenario's context if it names one, the
// client ID metadata document URL the suite expects where the server
// accepts one, dynamic registration otherwise, and the Headless receiver,
// since the suite's authorization servers approve at once.
//
// It allows the MCP 2025-03-26 fallback, which a library user must ask for:
// the suite's backcompat scenarios are servers of that revision, with no
// protected resource metadata. The fallback applies only where no such
// document exists, so the suite's resource-mismatch scenario still ends
// with no authorization request.
func newEscalator(sc scenarioContext) *authcode.Escalator {
	esc := &authcode.Escalator{
		Receiver:             &authcode.Headless{},
		ClientMetadataURL:    clientIDMetadataURL,
		ClientName:           "stepup conformance client",
		Discovery:            &discovery.Client{},
		AllowLegacyDiscovery: true,
	}
	if sc.ClientID != "" {
		esc.Client = &authcode.Registration{ClientID: sc.ClientID, ClientSecret: sc.ClientSecret}
	}
	return esc
}
