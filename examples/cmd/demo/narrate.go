package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"

	"github.com/stepup-go/stepup/internal/oauthtest"
)

// narrator prints the demo's lines as they happen, from any goroutine.
type narrator struct {
	mu   sync.Mutex
	out  io.Writer
	hide *strings.Replacer // when set, applied to every line
}

func (n *narrator) say(format string, args ...any) {
	n.mu.Lock()
	defer n.mu.Unlock()
	line := fmt.Sprintf(format+"\n", args...)
	if n.hide != nil {
		line = n.hide.Replace(line)
	}
	io.WriteString(n.out, line)
}

// observe narrates what the authorization server does.
func (n *narrator) observe(e oauthtest.Event) {
	switch e.Kind {
	case "authorize":
		n.say("     authorization server: authorization request for %q", strings.Join(e.Scopes, " "))
	case "consent":
		n.say("     authorization server: the user consents to %q", strings.Join(e.Scopes, " "))
	case "declined":
		n.say("     authorization server: the user DECLINES %q", strings.Join(e.Scopes, " "))
	case "token":
		n.say("     authorization server: token issued (grant_type=%s), scope %q, %s", e.GrantType, strings.Join(e.Scopes, " "), e.Detail)
	case "refused":
		n.say("     authorization server: token request refused (grant_type=%s): %s", e.GrantType, e.Detail)
	case "register":
		n.say("     authorization server: client registered (RFC 7591, %s)", e.Detail)
	}
}

// wire is the RoundTripper below stepup: it sees each request as it goes
// out, with whatever token stepup attached, and each response as it comes
// back, before stepup acts on it.
type wire struct {
	base http.RoundTripper
	n    *narrator
}

func (w *wire) RoundTrip(req *http.Request) (*http.Response, error) {
	what := describe(req)
	token := "no token"
	if req.Header.Get("Authorization") != "" {
		token = "with a token"
	}
	switch {
	case req.Method == http.MethodGet:
		w.n.say("     client → server: GET %s (the standalone SSE stream), %s", req.URL.Path, token)
	case what == "":
		w.n.say("     client → server: %s %s, %s", req.Method, req.URL.Path, token)
	default:
		w.n.say("     client → server: %s %s %s, %s", req.Method, req.URL.Path, what, token)
	}
	resp, err := w.base.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	if v := resp.Header.Values("WWW-Authenticate"); len(v) > 0 {
		w.n.say("     server → client: %s\n                      WWW-Authenticate: %s", resp.Status, strings.Join(v, ", "))
	} else if req.Method != http.MethodGet {
		w.n.say("     server → client: %s", resp.Status)
	}
	return resp, nil
}

// describe names the JSON-RPC message a POST carries, e.g. "tools/call
// write_note", reading the body through GetBody so that the request is
// left as it is.
func describe(req *http.Request) string {
	if req.GetBody == nil {
		return ""
	}
	body, err := req.GetBody()
	if err != nil {
		return ""
	}
	defer body.Close()
	b, _ := io.ReadAll(io.LimitReader(body, 1<<20))
	var msg struct {
		Method string `json:"method"`
		Params struct {
			Name string `json:"name"`
		} `json:"params"`
	}
	if json.Unmarshal(bytes.TrimSpace(b), &msg) != nil || msg.Method == "" {
		return "(a JSON-RPC response)"
	}
	if msg.Params.Name != "" {
		return msg.Method + " " + msg.Params.Name
	}
	return msg.Method
}
