package mcpserver

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/modelcontextprotocol/go-sdk/auth"

	"github.com/stepup-go/stepup/examples/internal/realserver"
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
// tools/call of a tool listed in toolScopes needs that tool's scopes too,
// and of one listed in stepUp, that authentication. It is the go-sdk's
// auth.RequireBearerToken twice, the second time for the tool; with
// RFC6750Challenges the challenges it writes are reworded.
type gate struct {
	issuer      string
	verifyToken func(ctx context.Context, token string) (*realserver.TokenInfo, error)
	resource    string
	metadataURL string
	base        []string
	toolScopes  map[string][]string
	stepUp      map[string]Authentication
	style       Challenges
	counts      *counts
}

// The keys of auth.TokenInfo.Extra for the token's authentication.
const (
	extraACR      = "acr"
	extraAuthTime = "auth_time"
)

func (g *gate) verify(ctx context.Context, token string, _ *http.Request) (*auth.TokenInfo, error) {
	info, err := g.verifyToken(ctx, token)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", auth.ErrInvalidToken, err)
	}
	return &auth.TokenInfo{
		Scopes: info.Scopes, Expiration: info.Expires, UserID: info.Subject,
		Extra: map[string]any{extraACR: info.ACR, extraAuthTime: info.AuthTime},
	}, nil
}

// wrap returns next behind the gate.
func (g *gate) wrap(next http.Handler) http.Handler {
	requireBase := auth.RequireBearerToken(g.verify, &auth.RequireBearerTokenOptions{
		ResourceMetadataURL: g.metadataURL, Scopes: g.base,
	})
	tools := make(map[string]http.Handler, len(g.toolScopes)+len(g.stepUp))
	for name, need := range g.stepUp {
		tools[name] = g.requireAuthentication(need, next)
	}
	for name, scopes := range g.toolScopes {
		h := next
		if t := tools[name]; t != nil {
			h = t
		}
		tools[name] = auth.RequireBearerToken(g.verify, &auth.RequireBearerTokenOptions{
			ResourceMetadataURL: g.metadataURL, Scopes: scopes,
		})(h)
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

// requireAuthentication lets through to next the requests whose token
// stems from the authentication need says, and answers the others with
// the challenge of RFC 9470 §3. It runs behind auth.RequireBearerToken,
// which put the token's information in the request's context.
func (g *gate) requireAuthentication(need Authentication, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var acr string
		var authTime time.Time
		if info := auth.TokenInfoFromContext(r.Context()); info != nil {
			acr, _ = info.Extra[extraACR].(string)
			authTime, _ = info.Extra[extraAuthTime].(time.Time)
		}
		params := []string{`error="insufficient_user_authentication"`}
		switch {
		case len(need.ACRs) > 0 && !slices.Contains(need.ACRs, acr):
			params = append(params,
				`error_description="A stronger authentication is needed"`,
				fmt.Sprintf("acr_values=%q", strings.Join(need.ACRs, " ")))
		case need.MaxAge > 0 && (authTime.IsZero() || time.Since(authTime) > need.MaxAge):
			params = append(params,
				`error_description="A more recent authentication is needed"`,
				"max_age="+strconv.Itoa(int(need.MaxAge/time.Second)))
		default:
			next.ServeHTTP(w, r)
			return
		}
		params = append(params, fmt.Sprintf("resource_metadata=%q", g.metadataURL))
		w.Header().Set("WWW-Authenticate", "Bearer "+strings.Join(params, ", "))
		http.Error(w, "insufficient_user_authentication", http.StatusUnauthorized)
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
	// A challenge with an error code is the gate's own (RFC 9470), not
	// auth.RequireBearerToken's.
	if (status == http.StatusUnauthorized || status == http.StatusForbidden) && len(h.Values("WWW-Authenticate")) == 1 &&
		!strings.Contains(h.Get("WWW-Authenticate"), "error=") {
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
