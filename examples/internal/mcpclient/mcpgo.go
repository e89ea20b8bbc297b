package mcpclient

import (
	"context"
	"fmt"
	"net/http"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"
)

type mcpGoSession struct{ c *client.Client }

func connectMCPGo(ctx context.Context, url string, hc *http.Client, opts Options) (Session, error) {
	topts := []transport.StreamableHTTPCOption{transport.WithHTTPBasicClient(hc)}
	if opts.OnToolListChanged != nil {
		// The standalone GET stream is what the tests of the 2025-11-25
		// revision exercise, deprecated as it is for 2026-07-28.
		//lint:ignore SA1019 the legacy stream is the point (see above)
		topts = append(topts, transport.WithContinuousListening())
	}
	tr, err := transport.NewStreamableHTTP(url, topts...)
	if err != nil {
		return nil, err
	}
	var copts []client.ClientOption
	if opts.ProtocolVersion != "" {
		copts = append(copts, client.WithProtocolVersion(opts.ProtocolVersion))
	}
	c := client.NewClient(tr, copts...)
	if f := opts.OnToolListChanged; f != nil {
		c.OnNotification(func(n mcp.JSONRPCNotification) {
			if n.Method == string(mcp.MethodNotificationToolsListChanged) {
				f()
			}
		})
	}
	if err := c.Start(ctx); err != nil {
		return nil, err
	}
	var init mcp.InitializeRequest
	init.Params.ClientInfo = mcp.Implementation{Name: "stepup-example", Version: "1.0.0"}
	if _, err := c.Initialize(ctx, init); err != nil {
		c.Close()
		return nil, err
	}
	return &mcpGoSession{c}, nil
}

func (s *mcpGoSession) ListTools(ctx context.Context) ([]string, error) {
	res, err := s.c.ListTools(ctx, mcp.ListToolsRequest{})
	if err != nil {
		return nil, err
	}
	names := make([]string, len(res.Tools))
	for i, t := range res.Tools {
		names[i] = t.Name
	}
	return names, nil
}

func (s *mcpGoSession) CallTool(ctx context.Context, name string, args map[string]any) (string, error) {
	var req mcp.CallToolRequest
	req.Params.Name = name
	if args == nil {
		args = map[string]any{}
	}
	req.Params.Arguments = args
	res, err := s.c.CallTool(ctx, req)
	if err != nil {
		return "", err
	}
	var parts []string
	for _, c := range res.Content {
		if t, ok := c.(mcp.TextContent); ok {
			parts = append(parts, t.Text)
		}
	}
	if res.IsError {
		return "", fmt.Errorf("%w: %s", errToolFailed, joinText(parts))
	}
	return joinText(parts), nil
}

func (s *mcpGoSession) Close() error { return s.c.Close() }
