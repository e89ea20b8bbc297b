// Package mcpserver runs the MCP servers of stepup's seed scenario in the
// process, on loopback: one built with the go-sdk
// (github.com/modelcontextprotocol/go-sdk) and one with mcp-go
// (github.com/mark3labs/mcp-go), both stateful Streamable HTTP servers
// protected by tokens of an [oauthtest.Server] or of any authorization
// server whose tokens a verifier function checks (a [realserver.Server]).
//
// The seed scenario: the first 401 asks for the base scopes, offline_access
// among them, so the client gets a refresh token; every tool but one needs
// only those; the tool write_note needs one more scope, mcp:write, and a
// call to it with a token that lacks it gets a 403 naming that scope. A
// client that refreshes on that 403 gets the same token scope again (RFC
// 6749 §6) and the same 403; one that asks for consent to the scopes it
// had plus mcp:write gets through.
package mcpserver

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"time"

	"github.com/stepup-go/stepup/examples/internal/realserver"
	"github.com/stepup-go/stepup/internal/oauthtest"
)

// The scopes of the seed scenario.
const (
	ScopeRead    = "mcp:read"
	ScopeWrite   = "mcp:write"
	ScopeOffline = "offline_access"
)

// The tools of the seed scenario.
const (
	// ToolRead needs only the base scopes.
	ToolRead = "read_notes"
	// ToolWrite needs ScopeWrite on top of them.
	ToolWrite = "write_note"
)

// Config configures a server: AuthServer, or Issuer and Verify, are
// required.
type Config struct {
	// AuthServer issues and verifies the tokens. The server registers its
	// resource URI with it.
	AuthServer *oauthtest.Server

	// Issuer is the authorization server the protected resource metadata
	// names, and Verify checks its access tokens, when AuthServer is nil.
	Issuer string
	Verify func(ctx context.Context, token string) (*realserver.TokenInfo, error)

	// Listener, when set, is where the server listens: its resource URI
	// is then known before it starts, as an authorization server
	// configured for it needs. Nil means a new loopback port.
	Listener net.Listener

	// StepUp lists the tools that need a stronger or more recent
	// authentication than the others (NewGoSDK adds those that are not
	// ToolRead or ToolWrite, answering their name); a call with a token
	// that lacks it gets a 401 insufficient_user_authentication (RFC 9470
	// §3).
	StepUp map[string]Authentication

	// Challenges says how challenges are worded: the go-sdk's as they are
	// (the zero value) or with RFC 6750 error codes.
	Challenges Challenges

	// BaseScopes are required on every request and asked for in the 401.
	// Nil means ScopeRead and ScopeOffline.
	BaseScopes []string

	// ToolScopes are the scopes a tools/call of each tool needs beyond the
	// base scopes. Nil means ToolWrite needs ScopeWrite.
	ToolScopes map[string][]string

	// ScopesSupported is the protected resource metadata's
	// scopes_supported (RFC 9728 §2). Nil means ScopeRead.
	ScopesSupported []string
}

// Authentication is what a tool needs of the authentication behind a
// token (RFC 9470): one of the ACRs, and at most MaxAge ago, where set.
type Authentication struct {
	ACRs   []string
	MaxAge time.Duration
}

func (c *Config) defaults() {
	if c.BaseScopes == nil {
		c.BaseScopes = []string{ScopeRead, ScopeOffline}
	}
	if c.ToolScopes == nil {
		c.ToolScopes = map[string][]string{ToolWrite: {ScopeWrite}}
	}
	if c.ScopesSupported == nil {
		c.ScopesSupported = []string{ScopeRead}
	}
}

// Server is a running MCP server.
type Server struct {
	// URL is the MCP endpoint, http://127.0.0.1:port/mcp: the resource
	// identifier (RFC 8707) of its tokens.
	URL string
	// MetadataURL is its protected resource metadata (RFC 9728),
	// at the path-inserted well-known URI.
	MetadataURL string

	srv    *httptest.Server
	counts *counts
	notify func()
	close  func()
}

// start serves mcp, behind the gate, and the metadata document on a
// loopback listener. build gets the server with its URLs set and returns
// the MCP endpoint's handler and the metadata handler.
func start(cfg Config, build func(s *Server, g *gate, cfg Config) (mcp, metadata http.Handler)) *Server {
	cfg.defaults()
	s := &Server{counts: &counts{}}
	mux := http.NewServeMux()
	s.srv = httptest.NewUnstartedServer(mux)
	if cfg.Listener != nil {
		s.srv.Listener.Close()
		s.srv.Listener = cfg.Listener
	}
	s.srv.Start()
	s.URL = s.srv.URL + "/mcp"
	s.MetadataURL = s.srv.URL + "/.well-known/oauth-protected-resource/mcp"
	g := &gate{
		issuer: cfg.Issuer, verifyToken: cfg.Verify, resource: s.URL, metadataURL: s.MetadataURL,
		base: cfg.BaseScopes, toolScopes: cfg.ToolScopes, stepUp: cfg.StepUp, style: cfg.Challenges, counts: s.counts,
	}
	if as := cfg.AuthServer; as != nil {
		as.AllowResource(s.URL)
		g.issuer = as.URL
		g.verifyToken = func(_ context.Context, token string) (*realserver.TokenInfo, error) {
			info, err := as.Verify(token, s.URL)
			if err != nil {
				return nil, err
			}
			return &realserver.TokenInfo{Subject: info.Subject, Scopes: info.Scopes, Expires: info.Expires}, nil
		}
	}
	mcp, metadata := build(s, g, cfg)
	mux.Handle("/mcp", g.wrap(mcp))
	mux.Handle("/.well-known/oauth-protected-resource/mcp", metadata)
	return s
}

// Counts returns what the server answered so far.
func (s *Server) Counts() Counts { return s.counts.get() }

// Notify makes the server send a notifications/tools/list_changed to every
// session, over its standalone SSE stream.
func (s *Server) Notify() { s.notify() }

// Close ends the sessions, their streams and the server.
func (s *Server) Close() {
	if s.close != nil {
		s.close()
	}
	s.srv.CloseClientConnections()
	s.srv.Close()
}

// notes is the tools' shared state: what write_note wrote.
type notes struct {
	mu  sync.Mutex
	all []string
}

func (n *notes) add(text string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.all = append(n.all, text)
}

func (n *notes) read() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	if len(n.all) == 0 {
		return "(no notes yet)"
	}
	return strings.Join(n.all, "\n")
}
