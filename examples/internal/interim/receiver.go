package interim

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"sync"
)

// Headless reads the authorization response from the authorization
// server's redirect, without following it: for servers that approve at
// once, as in tests and the conformance suite.
type Headless struct {
	// Client makes the authorization request; its redirects are not
	// followed. Nil means http.DefaultClient's transport.
	Client *http.Client
	// Redirect is the redirect URI; nothing listens there. Empty means
	// http://127.0.0.1/callback.
	Redirect string
}

// RedirectURI implements [Receiver].
func (h *Headless) RedirectURI() string {
	if h.Redirect != "" {
		return h.Redirect
	}
	return "http://127.0.0.1/callback"
}

// Receive implements [Receiver].
func (h *Headless) Receive(ctx context.Context, build func(string) string) (string, url.Values, error) {
	redirect := h.RedirectURI()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, build(redirect), nil)
	if err != nil {
		return "", nil, err
	}
	c := http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	if h.Client != nil {
		c.Transport, c.Timeout = h.Client.Transport, h.Client.Timeout
	}
	resp, err := c.Do(req)
	if err != nil {
		return "", nil, err
	}
	resp.Body.Close()
	loc, err := resp.Location()
	if err != nil {
		return "", nil, fmt.Errorf("the authorization endpoint answered %s without a redirect (does it need a person?)", resp.Status)
	}
	return redirect, loc.Query(), nil
}

// Loopback receives the authorization response on a loopback listener
// (RFC 8252 §7.3): for a person at a browser.
type Loopback struct {
	// Open brings the authorization URL to the person, e.g. by starting a
	// browser. It is required.
	Open func(authURL string) error
}

// RedirectURI implements [Receiver]: the port is chosen per request, which
// RFC 8252 §7.3 lets a loopback redirect URI do.
func (l *Loopback) RedirectURI() string { return "http://127.0.0.1/callback" }

// Receive implements [Receiver]. It listens on 127.0.0.1 on a free port
// until the browser comes back or ctx ends, and frees the port on every
// path.
func (l *Loopback) Receive(ctx context.Context, build func(string) string) (string, url.Values, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	redirect := fmt.Sprintf("http://%s/callback", ln.Addr())
	got := make(chan url.Values, 1)
	var once sync.Once
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/callback" {
			http.NotFound(w, r)
			return
		}
		once.Do(func() { got <- r.URL.Query() })
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, "<!doctype html><p>Done. You can close this window and go back to the terminal.</p>")
	})}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	defer func() {
		_ = srv.Close()
		<-served
	}()
	if err := l.Open(build(redirect)); err != nil {
		return "", nil, fmt.Errorf("opening the authorization URL: %w", err)
	}
	select {
	case q := <-got:
		return redirect, q, nil
	case <-ctx.Done():
		return "", nil, ctx.Err()
	case err := <-served:
		served <- err // for the deferred wait
		if errors.Is(err, http.ErrServerClosed) {
			err = errors.New("loopback listener closed")
		}
		return "", nil, err
	}
}
