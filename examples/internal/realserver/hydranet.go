package realserver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httputil"
	"net/url"
	"strings"
	"testing"
	"time"
)

// hydraAuthPath is Hydra's authorization endpoint.
const hydraAuthPath = "/oauth2/auth"

// hydraCounting puts c in front of next for the requests that count: at
// Hydra's authorization endpoint, the browser's first arrival, not its
// returns from login and consent with a verifier, which are the same
// authorization request.
func hydraCounting(c *counter, next http.Handler) http.Handler {
	counted := c.wrap(next)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		if r.URL.Path == hydraAuthPath && (q.Has("login_verifier") || q.Has("consent_verifier")) {
			next.ServeHTTP(w, r)
			return
		}
		counted.ServeHTTP(w, r)
	})
}

// hydraProxy forwards to Hydra's public port, keeping the Host the client
// used; Hydra builds its URLs from its configured issuer, the proxy's.
func hydraProxy(target *url.URL, tr http.RoundTripper) http.Handler {
	return &httputil.ReverseProxy{
		Transport: tr,
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(target)
			r.Out.Host = r.In.Host
		},
	}
}

// hydraBrowser is the person's browser: it keeps Hydra's cookies (its
// login and consent CSRF cookies) and follows redirects one by one, so
// that it can stop at the client's redirect URI.
type hydraBrowser struct {
	client *http.Client
}

// maxRedirects bounds one authorization's redirects: Hydra makes four
// (login, back, consent, back) and then the one to the client.
const maxRedirects = 16

func newHydraBrowser(t testing.TB, tr http.RoundTripper) *hydraBrowser {
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &hydraBrowser{client: &http.Client{
		Transport: tr,
		Jar:       jar,
		Timeout:   30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}}
}

// open follows authURL's redirects through Hydra and the consent app until
// one goes to the authorization request's redirect_uri, then GETs that one,
// where the client's receiver takes the response. A page that is no
// redirect before that is an error.
func (b *hydraBrowser) open(ctx context.Context, authURL string) error {
	u, err := url.Parse(authURL)
	if err != nil {
		return fmt.Errorf("browser: %w", err)
	}
	redirectURI := u.Query().Get("redirect_uri")
	if redirectURI == "" {
		return errors.New("browser: the authorization URL has no redirect_uri")
	}
	for range maxRedirects {
		if isRedirectTo(u, redirectURI) {
			resp, err := b.get(ctx, u)
			if err != nil {
				return err
			}
			resp.Body.Close()
			if resp.StatusCode/100 != 2 {
				return fmt.Errorf("browser: the client's redirect URI answered %s", resp.Status)
			}
			return nil
		}
		resp, err := b.get(ctx, u)
		if err != nil {
			return err
		}
		page, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
		resp.Body.Close()
		loc := resp.Header.Get("Location")
		if resp.StatusCode/100 != 3 || loc == "" {
			return fmt.Errorf("browser: %s %s answered %s, not a redirect: %.300s", u.Host, u.Path, resp.Status, page)
		}
		if u, err = u.Parse(loc); err != nil {
			return fmt.Errorf("browser: bad Location: %w", err)
		}
	}
	return errors.New("browser: too many redirects")
}

func (b *hydraBrowser) get(ctx context.Context, u *url.URL) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, fmt.Errorf("browser: %w", err)
	}
	resp, err := b.client.Do(req)
	if err != nil {
		// The URL may carry a code or a challenge: name the host only.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("browser: GET %s%s: %w", u.Host, u.Path, err)
	}
	return resp, nil
}

// isRedirectTo reports whether u is the redirect URI redirectURI with a
// response added to its query.
func isRedirectTo(u *url.URL, redirectURI string) bool {
	r, err := url.Parse(redirectURI)
	return err == nil && u.Scheme == r.Scheme && u.Host == r.Host && u.Path == r.Path &&
		strings.HasPrefix(u.RawQuery, r.RawQuery)
}
