package realserver

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
)

// maxPage bounds an interaction page the person reads.
const maxPage = 1 << 20

// person is the scripted person at a browser, at the interaction pages of
// oidcprovider.mjs: a login form and a consent form. The browser keeps
// the provider's cookies, so that a second authorization finds the
// session of the first.
type person struct {
	issuer  *url.URL
	browser *http.Client

	mu       sync.Mutex
	decision Decision
}

func newPerson(t testing.TB, issuer string) *person {
	u, err := url.Parse(issuer)
	if err != nil {
		t.Fatal(err)
	}
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	return &person{issuer: u, browser: &http.Client{Jar: jar, Transport: tr}}
}

func (p *person) decide(d Decision) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.decision = d
}

func (p *person) current() Decision {
	p.mu.Lock()
	defer p.mu.Unlock()
	d := p.decision
	d.Grant = slices.Clone(d.Grant)
	return d
}

// The forms of oidcprovider.mjs's pages.
var (
	formTag   = regexp.MustCompile(`<form method="post" action="([^"]+)" data-prompt="(login|consent)"(?: data-scopes="([^"]*)")?>`)
	errorText = regexp.MustCompile(`<p id="error">([^<]*)</p>`)
)

// browse opens authURL and answers the pages until the provider redirects
// away from itself, to the client's redirect URI, which the browser opens
// too.
func (p *person) browse(ctx context.Context, authURL string) error {
	d := p.current()
	resp, err := p.do(ctx, http.MethodGet, authURL, nil)
	for range 4 { // at most a login and a consent, and their redirects
		if err != nil {
			return err
		}
		if resp.url.Host != p.issuer.Host {
			return nil // at the redirect URI
		}
		m := formTag.FindStringSubmatch(resp.body)
		if m == nil {
			if e := errorText.FindStringSubmatch(resp.body); e != nil {
				return fmt.Errorf("realserver: the provider says: %s", html.UnescapeString(e[1]))
			}
			return fmt.Errorf("realserver: %s answered %d with no form the person knows", resp.url, resp.status)
		}
		action, err2 := resp.url.Parse(html.UnescapeString(m[1]))
		if err2 != nil {
			return err2
		}
		form := url.Values{}
		switch m[2] {
		case "login":
			acr := d.ACR
			if acr == "" {
				acr = ACRPassword
			}
			form.Set("login", "alice")
			form.Set("acr", acr)
		case "consent":
			if d.Decline {
				form.Set("decision", "deny")
				break
			}
			form.Set("decision", "allow")
			for _, s := range strings.Fields(html.UnescapeString(m[3])) {
				if d.Grant == nil || slices.Contains(d.Grant, s) {
					form.Add("scope", s)
				}
			}
		}
		resp, err = p.do(ctx, http.MethodPost, action.String(), form)
	}
	return fmt.Errorf("realserver: the provider asked for more than a login and a consent")
}

type page struct {
	url    *url.URL
	status int
	body   string
}

func (p *person) do(ctx context.Context, method, u string, form url.Values) (*page, error) {
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return nil, err
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := p.browser.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxPage))
	if err != nil {
		return nil, err
	}
	return &page{url: resp.Request.URL, status: resp.StatusCode, body: string(b)}, nil
}

// randomHex returns 32 random hex digits, for secrets.
func randomHex(t testing.TB) string {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}
