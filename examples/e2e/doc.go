// Package e2e holds stepup's end-to-end tests with the real MCP SDKs: the
// go-sdk and mcp-go clients, each with a stepup.Transport in its HTTP
// client, against the seed scenario's go-sdk and mcp-go servers and a real
// authorization code flow at the loopback authorization server of
// internal/oauthtest. The package has tests only.
package e2e
