package mcpserver

import (
	"context"
	"fmt"
	"net/http"
	"sync/atomic"

	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/modelcontextprotocol/go-sdk/oauthex"
)

// NewGoSDK starts the seed scenario's MCP server built with the go-sdk: a
// stateful mcp.StreamableHTTPHandler behind auth.RequireBearerToken, with
// the protected resource metadata served by
// auth.ProtectedResourceMetadataHandler.
func NewGoSDK(cfg Config) *Server {
	return start(cfg, func(s *Server, g *gate, cfg Config) (http.Handler, http.Handler) {
		server := mcp.NewServer(&mcp.Implementation{Name: "seed-gosdk", Version: "1.0.0"}, nil)
		n := &notes{}
		mcp.AddTool(server, &mcp.Tool{Name: ToolRead, Description: "Reads the notes."},
			func(ctx context.Context, _ *mcp.CallToolRequest, _ struct{}) (*mcp.CallToolResult, any, error) {
				s.counts.toolCall()
				return textResult(n.read()), nil, nil
			})
		mcp.AddTool(server, &mcp.Tool{Name: ToolWrite, Description: "Writes a note; needs " + ScopeWrite + "."},
			func(ctx context.Context, _ *mcp.CallToolRequest, in writeArgs) (*mcp.CallToolResult, any, error) {
				s.counts.toolCall()
				n.add(in.Text)
				return textResult("saved: " + in.Text), nil, nil
			})
		for name := range cfg.StepUp {
			if name == ToolRead || name == ToolWrite {
				continue
			}
			// A tool of its own for each step-up: it answers its name.
			mcp.AddTool(server, &mcp.Tool{Name: name, Description: "Needs a stronger authentication."},
				func(context.Context, *mcp.CallToolRequest, struct{}) (*mcp.CallToolResult, any, error) {
					s.counts.toolCall()
					return textResult("ok: " + name), nil, nil
				})
		}
		var added atomic.Int64
		s.notify = func() {
			// Adding a tool makes the server send tools/list_changed to
			// every session on its standalone stream.
			name := fmt.Sprintf("added_%d", added.Add(1))
			mcp.AddTool(server, &mcp.Tool{Name: name}, func(context.Context, *mcp.CallToolRequest, struct{}) (*mcp.CallToolResult, any, error) {
				return textResult(name), nil, nil
			})
		}
		handler := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return server }, nil)
		s.close = func() {
			for ss := range server.Sessions() {
				_ = ss.Close()
			}
		}
		metadata := auth.ProtectedResourceMetadataHandler(&oauthex.ProtectedResourceMetadata{
			Resource:               s.URL,
			AuthorizationServers:   []string{g.issuer},
			ScopesSupported:        cfg.ScopesSupported,
			BearerMethodsSupported: []string{"header"},
		})
		return handler, metadata
	})
}

// writeArgs are write_note's arguments.
type writeArgs struct {
	Text string `json:"text" jsonschema:"the note to write"`
}

func textResult(text string) *mcp.CallToolResult {
	return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: text}}}
}
