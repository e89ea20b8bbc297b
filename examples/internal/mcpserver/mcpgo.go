package mcpserver

import (
	"context"
	"fmt"
	"net/http"
	"sync/atomic"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"
)

// NewMCPGo starts the seed scenario's MCP server built with mcp-go: a
// stateful server.StreamableHTTPServer behind the same gate as [NewGoSDK]'s,
// serving its own protected resource metadata.
func NewMCPGo(cfg Config) *Server {
	return start(cfg, func(s *Server, g *gate, cfg Config) (http.Handler, http.Handler) {
		srv := server.NewMCPServer("seed-mcpgo", "1.0.0", server.WithToolCapabilities(true))
		n := &notes{}
		srv.AddTool(mcp.NewTool(ToolRead, mcp.WithDescription("Reads the notes.")),
			func(context.Context, mcp.CallToolRequest) (*mcp.CallToolResult, error) {
				s.counts.toolCall()
				return mcp.NewToolResultText(n.read()), nil
			})
		srv.AddTool(mcp.NewTool(ToolWrite, mcp.WithDescription("Writes a note; needs "+ScopeWrite+"."),
			mcp.WithString("text", mcp.Required(), mcp.Description("the note to write"))),
			func(_ context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
				s.counts.toolCall()
				text := req.GetString("text", "")
				n.add(text)
				return mcp.NewToolResultText("saved: " + text), nil
			})
		var added atomic.Int64
		s.notify = func() {
			// Adding a tool makes the server send tools/list_changed to
			// every session on its standalone stream.
			name := fmt.Sprintf("added_%d", added.Add(1))
			srv.AddTool(mcp.NewTool(name), func(context.Context, mcp.CallToolRequest) (*mcp.CallToolResult, error) {
				return mcp.NewToolResultText(name), nil
			})
		}
		meta := server.ProtectedResourceMetadataConfig{
			Resource:               s.URL,
			AuthorizationServers:   []string{g.issuer},
			ScopesSupported:        cfg.ScopesSupported,
			BearerMethodsSupported: []string{"header"},
		}
		handler := server.NewStreamableHTTPServer(srv)
		s.close = func() { handler.CloseSessions(context.Background()) }
		return handler, server.NewProtectedResourceMetadataHandler(meta)
	})
}
