package mcpserver

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/modelcontextprotocol/go-sdk/auth"

	"github.com/stepup-go/stepup/examples/internal/authserver"
)

// Challenges says how the server words its WWW-Authenticate challenges.
type Challenges int

const (
	// GoSDKChallenges are the go-sdk's auth.RequireBearerToken as it is: a
	// 401 (no token, or an expired or unknown one) and a 403 (a scope
	// missing) both carry resource_metadata and scope, and no error code.
	GoSDKChallenges Challenges = iota
	// RFC6750Challenges are what a server that follows RFC 6750 §3.1 and
	// the MCP authorization spec sends: the same, with error="invalid_token"
	// on a 401 to a request that carried a token and
	// error="insufficient_scope" on a 403 ("Runtime insufficient scope
	// errors", MCP 2025-11-25).
	RFC6750Challenges
)

// maxRPCBody bounds the JSON-RPC body the gate reads to learn the method.
const maxRPCBody = 1 << 20

// gate protects the MCP endpoint: every request needs the base scopes, and
// tools/call of a tool listed in toolScopes needs that tool's scopes too.
// It is the go-sdk's auth.RequireBearerToken twice, the second time for the
// tool; with RFC6750Challenges the challenges it writes are reworded.
type gate struct {
	as          *authserver.Server
	resource    string
	metadataURL string
	base        []string
	toolScopes  map[string][]string
	style       Challenges
	counts      *counts
}

func (g *gate) verify(_ context.Context, token string, _ *http.Request) (*auth.TokenInfo, error) {
	info, err := g.as.Verify(token, g.resource)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", auth.ErrInvalidToken, err)
	}
	return &auth.TokenInfo{Scopes: info.Scopes, Expiration: info.Expires, UserID: info.Subject}, nil
}

// wrap returns next behind the gate.
func (g *gate) wrap(next http.Handler) http.Handler {
	requireBase := auth.RequireBearerToken(g.verify, &auth.RequireBearerTokenOptions{
		ResourceMetadataURL: g.metadataURL, Scopes: g.base,
	})
	tools := make(map[string]http.Handler, len(g.toolScopes))
	for name, scopes := range g.toolScopes {
		tools[name] = auth.RequireBearerToken(g.verify, &auth.RequireBearerTokenOptions{
			ResourceMetadataURL: g.metadataURL, Scopes: scopes,
		})(next)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		g.counts.request(r)
		h := next
		if tool, ok := toolCalled(r); ok && tools[tool] != nil {
			h = tools[tool]
		}
		if g.style == RFC6750Challenges {
			w = &rewordingWriter{ResponseWriter: w, g: g, tokenSent: r.Header.Get("Authorization") != ""}
		}
		requireBase(h).ServeHTTP(&countingWriter{ResponseWriter: w, counts: g.counts, method: r.Method}, r)
	})
}

// toolCalled returns the tool name of a JSON-RPC tools/call request, leaving
// the body readable for the next handler.
func toolCalled(r *http.Request) (string, bool) {
	if r.Method != http.MethodPost || r.Body == nil {
		return "", false
	}
	orig := r.Body
	body, err := io.ReadAll(io.LimitReader(orig, maxRPCBody+1))
	// The next handler reads what was read here, then the rest.
	r.Body = readCloser{io.MultiReader(bytes.NewReader(body), orig), orig}
	if err != nil || len(body) > maxRPCBody {
		return "", false
	}
	var msg struct {
		Method string `json:"method"`
		Params struct {
			Name string `json:"name"`
		} `json:"params"`
	}
	if json.Unmarshal(body, &msg) != nil || msg.Method != "tools/call" {
		return "", false
	}
	return msg.Params.Name, true
}

type readCloser struct {
	io.Reader
	io.Closer
}

// rewordingWriter replaces the challenge of a 401 or 403 written by
// auth.RequireBearerToken with one carrying the RFC 6750 error code, with
// the same scope and resource_metadata, in the order the MCP spec shows.
type rewordingWriter struct {
	http.ResponseWriter
	g         *gate
	tokenSent bool
}

func (w *rewordingWriter) WriteHeader(status int) {
	h := w.Header()
	if (status == http.StatusUnauthorized || status == http.StatusForbidden) && len(h.Values("WWW-Authenticate")) == 1 {
		scope := quotedParam(h.Get("WWW-Authenticate"), "scope")
		var params []string
		switch {
		case status == http.StatusForbidden:
			params = append(params, `error="insufficient_scope"`)
		case w.tokenSent:
			params = append(params, `error="invalid_token"`)
		}
		if scope != "" {
			params = append(params, fmt.Sprintf("scope=%q", scope))
		}
		params = append(params, fmt.Sprintf("resource_metadata=%q", w.g.metadataURL))
		if status == http.StatusForbidden {
			params = append(params, `error_description="This tool needs more scope than the token has"`)
		}
		h.Set("WWW-Authenticate", "Bearer "+strings.Join(params, ", "))
	}
	w.ResponseWriter.WriteHeader(status)
}

func (w *rewordingWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the connection (SSE streams).
func (w *rewordingWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// quotedParam returns the value of the quoted-string parameter name in a
// challenge written by auth.RequireBearerToken (Go %q quoting, which scope
// tokens and URLs never need to escape).
func quotedParam(challenge, name string) string {
	_, rest, ok := strings.Cut(challenge, name+`="`)
	if !ok {
		return ""
	}
	v, _, _ := strings.Cut(rest, `"`)
	return v
}
