package authcode

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os/exec"
	"runtime"
	"strings"
)

// OpenFunc gets an authorization URL to the person who is to consent:
// prints it, opens a browser, sends it to a chat. It returns once the URL
// is on its way; the [Receiver] waits for the answer.
type OpenFunc func(ctx context.Context, authURL string) error

// PrintURL returns an [OpenFunc] that writes the URL to w with a line
// asking the person to open it.
func PrintURL(w io.Writer) OpenFunc {
	return func(_ context.Context, authURL string) error {
		_, err := fmt.Fprintf(w, "Open this URL in your browser to authorize access:\n\n    %s\n\n", authURL)
		return err
	}
}

// OpenBrowser opens authURL in the person's default browser: with
// xdg-open on Linux and the BSDs, open on macOS, and the URL protocol
// handler of url.dll on Windows, each started directly, never through a
// shell, with the URL as one argument. Only an http or https URL without
// spaces, quotes or control characters is opened (the MCP security best
// practices: a javascript:, data: or file: URL from a server must never
// reach a browser or a shell). It does not wait for the browser.
func OpenBrowser(ctx context.Context, authURL string) error {
	if err := checkBrowsable(authURL); err != nil {
		return err
	}
	name, args := browserCommand(runtime.GOOS)
	cmd := exec.Command(name, append(args, authURL)...)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("authcode: opening a browser: %w", err)
	}
	go func() { _ = cmd.Wait() }() // reap the launcher, which exits once the browser has the URL
	return nil
}

func browserCommand(goos string) (string, []string) {
	switch goos {
	case "darwin":
		return "open", nil
	case "windows":
		return "rundll32", []string{"url.dll,FileProtocolHandler"}
	}
	return "xdg-open", nil
}

// checkBrowsable checks that u is an absolute http(s) URL that a launcher
// cannot mistake for options or several arguments.
func checkBrowsable(u string) error {
	p, err := url.Parse(u)
	if err != nil {
		return fmt.Errorf("authcode: not opening %q: %w", clip(u), err)
	}
	if p.Scheme != "https" && p.Scheme != "http" || p.Host == "" || p.Opaque != "" {
		return fmt.Errorf("authcode: not opening %q: only http and https URLs are opened", clip(u))
	}
	if strings.ContainsFunc(u, func(r rune) bool { return r <= ' ' || r == '"' || r == '\'' || r == '\\' || r == 0x7f }) {
		return errors.New("authcode: not opening a URL with spaces, quotes or control characters")
	}
	return nil
}
