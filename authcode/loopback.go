package authcode

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// DefaultCallbackPath is the path of a [Loopback] redirect URI when
// Loopback.Path is empty.
const DefaultCallbackPath = "/callback"

// Loopback is a [Receiver] for programs a person runs on their own
// machine (RFC 8252 §7.3): it listens on the IPv4 loopback address, on a
// free port unless told one, uses http://127.0.0.1:PORT/callback as the
// redirect URI, hands the authorization URL to Open, and waits under the
// context for the browser to bring the response back. It answers the
// browser with a short page, and refuses an answer whose state is not the
// request's (RFC 6749 §10.12) while it goes on waiting for the right one.
// The listener is closed and the port freed when Receive returns, on every
// path.
//
// RFC 8252 §7.3 requires authorization servers to accept any port on a
// loopback redirect URI of a native client, which the [Escalator]
// registers its clients as. A server that compares the port, as
// oidc-provider does for a client registered as a web client, or as one
// does for a client registered beforehand with a port in its redirect URI,
// needs Port set to the port registered; the port must then be free when
// the person logs in. A server that refuses the redirect URI shows the
// person an error page and never redirects (RFC 6749 §4.1.2.1), so that
// nothing reaches the listener: against a server without pushed
// authorization requests, where the [Escalator] learns of the refusal
// before the browser opens, only the context's deadline ends the wait.
// The zero value is ready to use.
type Loopback struct {
	// Open gets the authorization URL to the person; nil means
	// [PrintURL] to standard error. [OpenBrowser] opens a browser.
	Open OpenFunc
	// Port is the port to listen on; 0 means a free one, another at each
	// login. Set it for an authorization server that holds the client to
	// the exact redirect URI registered (see [Loopback]).
	Port int
	// Path is the redirect URI's path; "" means DefaultCallbackPath.
	Path string
}

// shutdownGrace is how long a Loopback lets the browser finish reading
// its page after the response arrived.
const shutdownGrace = 2 * time.Second

// Receive implements [Receiver].
func (l *Loopback) Receive(ctx context.Context, authorize AuthorizeFunc) (url.Values, error) {
	path := l.Path
	if path == "" {
		path = DefaultCallbackPath
	}
	if !strings.HasPrefix(path, "/") {
		return nil, fmt.Errorf("authcode: Loopback.Path %q does not start with /", path)
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp4", net.JoinHostPort("127.0.0.1", strconv.Itoa(l.Port)))
	if err != nil {
		return nil, fmt.Errorf("authcode: loopback listener: %w", err)
	}
	ar, err := authorize(ctx, "http://"+ln.Addr().String()+path)
	if err != nil {
		ln.Close()
		return nil, err
	}

	result := make(chan url.Values, 1)
	srv := &http.Server{Handler: callbackHandler(path, ar.State, result), ReadHeaderTimeout: 10 * time.Second}
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = srv.Serve(ln) // closes ln when it returns
	}()
	received := false
	defer func() {
		if received {
			sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
			_ = srv.Shutdown(sctx)
			cancel()
		}
		_ = srv.Close()
		<-served
	}()

	open := l.Open
	if open == nil {
		open = PrintURL(os.Stderr)
	}
	if err := open(ctx, ar.URL); err != nil {
		return nil, fmt.Errorf("authcode: handing over the authorization URL: %w", err)
	}
	select {
	case params := <-result:
		received = true
		return params, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// callbackHandler answers the browser at path: the first response with
// the request's state goes to result.
func callbackHandler(path, state string, result chan<- url.Values) http.Handler {
	var once sync.Once
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != path {
			http.NotFound(w, r)
			return
		}
		if r.Method != http.MethodGet {
			w.Header().Set("Allow", http.MethodGet)
			page(w, http.StatusMethodNotAllowed, "This address only takes the authorization server's answer.")
			return
		}
		q := r.URL.Query()
		if st := q["state"]; len(st) != 1 || st[0] != state {
			page(w, http.StatusBadRequest, "This answer does not belong to the sign-in in progress, and was ignored.")
			return
		}
		delivered := false
		once.Do(func() {
			result <- q
			delivered = true
		})
		switch {
		case !delivered:
			page(w, http.StatusConflict, "This sign-in was already answered.")
		case q.Has("error"):
			page(w, http.StatusOK, "Authorization was not granted. You can close this window.")
		default:
			page(w, http.StatusOK, "Authorization received. You can close this window and return to the application.")
		}
	})
}

// page writes a short page with a fixed message: nothing of the request
// is reflected in it.
func page(w http.ResponseWriter, status int, msg string) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", "default-src 'none'")
	h.Set("Cache-Control", "no-store")
	h.Set("Referrer-Policy", "no-referrer")
	w.WriteHeader(status)
	fmt.Fprintf(w, "<!doctype html><meta charset=utf-8><title>Authorization</title><p>%s</p>\n", msg)
}
