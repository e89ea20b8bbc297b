// Command demo plays the scenario stepup exists for, end to end, in one
// process on loopback, with real parts: an authorization server that issues
// refresh tokens only for offline_access and never widens scope on refresh;
// an MCP server built with the go-sdk whose first 401 asks for
// offline_access and whose tool write_note needs mcp:write, answered with
// 403 Bearer error="insufficient_scope"; and the go-sdk MCP client, whose
// HTTP client is wrapped by stepup with the authcode Escalator: discovery,
// dynamic registration, PKCE, consent approved at once (authcode.Headless),
// or by a person in a browser (authcode.Loopback and authcode.OpenBrowser).
//
// It narrates each step as it happens: 401, login, a tool call, the 403
// with its WWW-Authenticate as received, consent for the union of the
// scopes, the replay, the result, and that no refresh was sent for the 403
// (a refresh cannot widen scope, RFC 6749 §6).
//
//	go run ./examples/cmd/demo              # the seed scenario
//	go run ./examples/cmd/demo -decline     # the guard: the user declines the new scope
//	go run ./examples/cmd/demo -interactive # consent in a browser, through a loopback receiver
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/stepup-go/stepup"
	"github.com/stepup-go/stepup/authcode"
	"github.com/stepup-go/stepup/discovery"
	"github.com/stepup-go/stepup/examples/internal/mcpclient"
	"github.com/stepup-go/stepup/examples/internal/mcpserver"
	"github.com/stepup-go/stepup/internal/oauthtest"
)

func main() {
	log.SetFlags(0)
	var o options
	flag.BoolVar(&o.decline, "decline", false, "the user declines the new scope: show the guard")
	flag.BoolVar(&o.interactive, "interactive", false, "consent in a browser, through a loopback receiver")
	flag.BoolVar(&o.placeholderPorts, "placeholder-ports", false, "print the servers' ports as AS_PORT and MCP_PORT, for output that is the same from run to run")
	flag.Parse()
	if err := run(os.Stdout, o); err != nil {
		log.Fatal("demo: ", err)
	}
}

type options struct {
	decline     bool
	interactive bool
	// placeholderPorts prints the servers' loopback ports as names, so
	// that the transcript docs/demo.md quotes can be checked against a
	// new run.
	placeholderPorts bool
	// open brings an authorization URL to the person in interactive mode.
	// Nil means a browser, through authcode.OpenBrowser.
	open authcode.OpenFunc
}

func run(out io.Writer, o options) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	n := &narrator{out: out}

	as := oauthtest.New(oauthtest.Config{IssParameter: true, Observe: n.observe})
	defer as.Close()
	srv := mcpserver.NewGoSDK(mcpserver.Config{AuthServer: as, Challenges: mcpserver.RFC6750Challenges})
	defer srv.Close()
	base := &http.Transport{}
	defer base.CloseIdleConnections()
	if o.placeholderPorts {
		n.hide = strings.NewReplacer(hostPort(as.URL), "127.0.0.1:AS_PORT", hostPort(srv.URL), "127.0.0.1:MCP_PORT")
	}

	n.say("stepup demo: %s, in one process on loopback", map[bool]string{false: "the seed scenario", true: "the guard (the user declines)"}[o.decline])
	n.say("  authorization server  %s  (refresh tokens only for offline_access; a refresh never widens scope)", as.URL)
	n.say("  MCP server (go-sdk)   %s  (the 401 asks for %q; %s needs %s)", srv.URL,
		mcpserver.ScopeRead+" "+mcpserver.ScopeOffline, mcpserver.ToolWrite, mcpserver.ScopeWrite)
	consent := "the user's consent comes at once (authcode.Headless)"
	if o.interactive {
		consent = "the user consents in a browser (authcode.Loopback)"
	}
	n.say("  MCP client (go-sdk)   its HTTP client is a stepup.Transport with the authcode Escalator;")
	n.say("                        %s", consent)

	var receiver authcode.Receiver = &authcode.Headless{} // the server approves at once
	if o.interactive {
		as.SetConsent(nil) // a consent page, for a person
		open := o.open
		if open == nil {
			open = openBrowser(n)
		}
		receiver = &authcode.Loopback{Open: open}
	}
	esc := newEscalator(receiver)
	defer esc.Discovery.CloseIdleConnections()
	ts, err := stepup.NewTokenSource(srv.URL, nil, stepup.WithEscalator(narrated(n, esc)))
	if err != nil {
		return err
	}
	hc := &http.Client{Transport: &stepup.Transport{
		Base:   &wire{base: base, n: n},
		Source: ts,
	}}

	n.say("\n1. The client connects, with no token yet.")
	// Protocol 2025-11-25: the initialize handshake and a session with a
	// standalone SSE stream, as most servers deployed today speak.
	session, err := mcpclient.Connect(ctx, mcpclient.GoSDK, srv.URL, hc, mcpclient.Options{ProtocolVersion: mcpclient.Legacy})
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer session.Close() // on the error paths; closing twice is harmless
	tok, _ := ts.Token()
	_, granted := ts.Scopes()
	n.say("   connected; granted %q, refresh token: %t", granted.String(), tok.RefreshToken != "")

	n.say("\n2. The client calls %s, which the token allows.", mcpserver.ToolRead)
	if err := call(ctx, n, session, mcpserver.ToolRead, nil); err != nil {
		return err
	}

	if o.decline {
		return guard(ctx, n, as, session, o)
	}
	n.say("\n3. The client calls %s, which needs %s. The client holds a refresh token, but a refresh", mcpserver.ToolWrite, mcpserver.ScopeWrite)
	n.say("   cannot add a scope (RFC 6749 §6): stepup asks for consent to the union of the scopes instead.")
	if err := call(ctx, n, session, mcpserver.ToolWrite, map[string]any{"text": "hello from the demo"}); err != nil {
		return err
	}
	_, granted = ts.Scopes()
	n.say("   granted now: %q", granted.String())

	n.say("\n4. The session goes on with the wider token.")
	if err := call(ctx, n, session, mcpserver.ToolRead, nil); err != nil {
		return err
	}
	return summary(n, as, session, "5")
}

// guard plays the second mode: the user declines mcp:write. The call
// fails after one prompt; a second try fails at once, with no prompt, as
// the guard remembers the refusal (stepup.WithExhaustedTTL); calls that
// need no new scope go on, on the same session.
func guard(ctx context.Context, n *narrator, as *oauthtest.Server, session mcpclient.Session, o options) error {
	if o.interactive {
		n.say("\n   (In the browser, press Decline, or untick %s and approve.)", mcpserver.ScopeWrite)
	} else {
		as.SetConsent(oauthtest.DeclineIfRequested(mcpserver.ScopeWrite))
	}
	n.say("\n3. The client calls %s, which needs %s; the user will not grant it.", mcpserver.ToolWrite, mcpserver.ScopeWrite)
	before := as.Stats().ConsentPrompts
	if err := declined(ctx, n, session, "not allowed"); err != nil {
		return err
	}
	n.say("   consent prompts for this call: %d", as.Stats().ConsentPrompts-before)

	n.say("\n4. The client tries %s again. stepup remembers the refusal: no new prompt.", mcpserver.ToolWrite)
	before = as.Stats().ConsentPrompts
	if err := declined(ctx, n, session, "still not allowed"); err != nil {
		return err
	}
	if p := as.Stats().ConsentPrompts - before; p != 0 {
		return fmt.Errorf("the second try prompted %d times", p)
	}
	n.say("   consent prompts for this call: 0")

	n.say("\n5. The session goes on serving calls that need no new scope.")
	if err := call(ctx, n, session, mcpserver.ToolRead, nil); err != nil {
		return err
	}
	return summary(n, as, session, "6")
}

// declined calls write_note, which must fail with stepup.ErrDeclined.
func declined(ctx context.Context, n *narrator, session mcpclient.Session, text string) error {
	_, err := session.CallTool(ctx, mcpserver.ToolWrite, map[string]any{"text": text})
	if err == nil {
		return errors.New("write_note succeeded although the user declined")
	}
	n.say("   the call failed: %v", err)
	n.say("   errors.Is(err, stepup.ErrDeclined) = %t: the caller can tell a refusal from a failure", errors.Is(err, stepup.ErrDeclined))
	if !errors.Is(err, stepup.ErrDeclined) {
		return fmt.Errorf("write_note: not ErrDeclined: %w", err)
	}
	return nil
}

// call calls a tool and narrates the result.
func call(ctx context.Context, n *narrator, s mcpclient.Session, tool string, args map[string]any) error {
	out, err := s.CallTool(ctx, tool, args)
	if err != nil {
		return fmt.Errorf("%s: %w", tool, err)
	}
	n.say("   result: %s", strings.ReplaceAll(out, "\n", " / "))
	return nil
}

// summary closes the session and prints the authorization server's counts,
// and fails when they are not what stepup promises: one prompt for the
// login, one for the step-up, no refresh.
func summary(n *narrator, as *oauthtest.Server, session mcpclient.Session, step string) error {
	const prompts = 2
	n.say("\n%s. The client closes the session.", step)
	if err := session.Close(); err != nil {
		return fmt.Errorf("close: %w", err)
	}
	st := as.Stats()
	n.say("\nConsent prompts: %d. Token requests: %d authorization_code, %d refresh_token.",
		st.ConsentPrompts, st.CodeExchanges(), st.Refreshes())
	n.say("Refresh requests sent for the 403: %d (a refresh cannot widen scope, RFC 6749 §6).", st.Refreshes())
	if st.ConsentPrompts != prompts || st.Refreshes() != 0 {
		return fmt.Errorf("expected %d consent prompts and no refresh", prompts)
	}
	return nil
}

// newEscalator returns the authcode Escalator: it discovers the
// authorization server from the MCP server's metadata and registers itself
// dynamically. Its requests go through its own discovery.Client, which
// keeps them to loopback here because the MCP server is on loopback.
func newEscalator(r authcode.Receiver) *authcode.Escalator {
	return &authcode.Escalator{Receiver: r, ClientName: "stepup demo", Discovery: &discovery.Client{}}
}

// narrated tells what stepup asks of the Escalator before it asks.
func narrated(n *narrator, e stepup.Escalator) stepup.Escalator {
	return stepup.EscalatorFunc(func(ctx context.Context, req *stepup.EscalationRequest) (*stepup.Grant, error) {
		line := fmt.Sprintf("     stepup: %s → Escalator, asking for %q", req.Reason, req.Scopes.String())
		if len(req.ChallengedScopes) > 0 && !req.ChallengedScopes.Equal(req.Scopes) {
			line += fmt.Sprintf(": requested ∪ granted ∪ challenged (%q); no refresh", req.ChallengedScopes.String())
		}
		n.say("%s", line)
		g, err := e.Escalate(ctx, req)
		if err != nil {
			n.say("     stepup: the Escalator failed: %v", err)
		}
		return g, err
	})
}

// openBrowser returns an [authcode.OpenFunc] that prints the URL and
// opens it with [authcode.OpenBrowser] (http(s) only, no shell). Without a
// launcher to start, the person opens the printed URL.
func openBrowser(n *narrator) authcode.OpenFunc {
	return func(ctx context.Context, u string) error {
		n.say("     open this URL to consent: %s", u)
		err := authcode.OpenBrowser(ctx, u)
		if errors.Is(err, exec.ErrNotFound) {
			n.say("     (no browser launcher here: open the URL yourself)")
			return nil
		}
		return err
	}
}

// hostPort is the host:port of a server's URL.
func hostPort(serverURL string) string {
	u, err := url.Parse(serverURL)
	if err != nil {
		return serverURL
	}
	return u.Host
}
