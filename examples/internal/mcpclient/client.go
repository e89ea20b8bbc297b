// Package mcpclient connects the two Go MCP client SDKs to a Streamable HTTP
// server through an [http.Client] of the caller's, which is where stepup
// sits: the go-sdk (github.com/modelcontextprotocol/go-sdk) through
// mcp.StreamableClientTransport.HTTPClient with OAuthHandler nil, and mcp-go
// (github.com/mark3labs/mcp-go) through transport.WithHTTPBasicClient. The
// SDKs then do no OAuth of their own: the challenges reach stepup.
package mcpclient

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// SDK names an MCP client SDK.
type SDK string

// The SDKs.
const (
	GoSDK SDK = "go-sdk"
	MCPGo SDK = "mcp-go"
)

// SDKs lists the SDKs, for tests that run with each.
var SDKs = []SDK{GoSDK, MCPGo}

// ParseSDK returns the SDK named s.
func ParseSDK(s string) (SDK, error) {
	for _, sdk := range SDKs {
		if string(sdk) == s {
			return sdk, nil
		}
	}
	return "", fmt.Errorf("unknown MCP client %q (want go-sdk or mcp-go)", s)
}

// Legacy is the newest protocol revision that still has the initialize
// handshake, sessions and the standalone SSE stream (2025-11-25).
const Legacy = "2025-11-25"

// Options configures a session. The zero value uses the SDK's defaults.
type Options struct {
	// ProtocolVersion pins the protocol revision the client asks for.
	// mcp-go v1.2.1 takes any successful server/discover reply for a
	// 2026-07-28 server without checking the versions it names, so
	// against a stateful go-sdk server it must be pinned to Legacy.
	ProtocolVersion string

	// OnToolListChanged, when set, is called for each
	// notifications/tools/list_changed the server sends. With mcp-go it
	// also opens the standalone SSE stream (continuous listening), which
	// the go-sdk opens by itself on a session with one.
	OnToolListChanged func()
}

// Session is a connected MCP client session, whichever the SDK.
type Session interface {
	// ListTools returns the names of the server's tools.
	ListTools(ctx context.Context) ([]string, error)
	// CallTool calls a tool and returns the text of its result. A result
	// with isError set is an error.
	CallTool(ctx context.Context, name string, args map[string]any) (string, error)
	// Close ends the session.
	Close() error
}

// Connect connects sdk's client to the MCP endpoint url through hc, and
// initializes the session.
func Connect(ctx context.Context, sdk SDK, url string, hc *http.Client, opts Options) (Session, error) {
	switch sdk {
	case GoSDK:
		return connectGoSDK(ctx, url, hc, opts)
	case MCPGo:
		return connectMCPGo(ctx, url, hc, opts)
	}
	return nil, fmt.Errorf("unknown MCP client %q", sdk)
}

// errToolFailed says the tool ran and reported an error in its result.
var errToolFailed = errors.New("the tool reported an error")

func joinText(parts []string) string { return strings.Join(parts, "\n") }
