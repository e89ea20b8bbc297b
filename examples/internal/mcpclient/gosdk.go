package mcpclient

import (
	"context"
	"fmt"
	"net/http"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

type goSDKSession struct{ cs *mcp.ClientSession }

func connectGoSDK(ctx context.Context, url string, hc *http.Client, opts Options) (Session, error) {
	var copts mcp.ClientOptions
	if f := opts.OnToolListChanged; f != nil {
		copts.ToolListChangedHandler = func(context.Context, *mcp.ToolListChangedRequest) { f() }
	}
	client := mcp.NewClient(&mcp.Implementation{Name: "stepup-example", Version: "1.0.0"}, &copts)
	// OAuthHandler stays nil: the challenges are stepup's, in hc.
	cs, err := client.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: url, HTTPClient: hc},
		&mcp.ClientSessionOptions{ProtocolVersion: opts.ProtocolVersion})
	if err != nil {
		return nil, err
	}
	return &goSDKSession{cs}, nil
}

func (s *goSDKSession) ListTools(ctx context.Context) ([]string, error) {
	res, err := s.cs.ListTools(ctx, nil)
	if err != nil {
		return nil, err
	}
	names := make([]string, len(res.Tools))
	for i, t := range res.Tools {
		names[i] = t.Name
	}
	return names, nil
}

func (s *goSDKSession) CallTool(ctx context.Context, name string, args map[string]any) (string, error) {
	if args == nil {
		args = map[string]any{}
	}
	res, err := s.cs.CallTool(ctx, &mcp.CallToolParams{Name: name, Arguments: args})
	if err != nil {
		return "", err
	}
	var parts []string
	for _, c := range res.Content {
		if t, ok := c.(*mcp.TextContent); ok {
			parts = append(parts, t.Text)
		}
	}
	if res.IsError {
		return "", fmt.Errorf("%w: %s", errToolFailed, joinText(parts))
	}
	return joinText(parts), nil
}

func (s *goSDKSession) Close() error { return s.cs.Close() }

// WrapGoSDK returns cs as a [Session], for a go-sdk session connected by
// other means (another OAuth client, say).
func WrapGoSDK(cs *mcp.ClientSession) Session { return &goSDKSession{cs} }
