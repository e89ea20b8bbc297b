package realserver

import (
	"bytes"
	"io"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"sync"
)

// maxTokenForm bounds the request body the counter reads to learn the
// grant_type or the scope; such requests are a few hundred bytes.
const maxTokenForm = 64 << 10

// counter counts the requests to an authorization server's endpoints as
// they pass, by their paths, before the server sees them: a count read
// after a response includes the request that caused it.
type counter struct {
	authorize, register, token, pushed string // endpoint paths

	mu sync.Mutex
	c  Counts
}

func newCounter(authorize, register, token, pushed string) *counter {
	return &counter{authorize: authorize, register: register, token: token, pushed: pushed, c: Counts{Grants: map[string]int{}}}
}

// wrap returns next behind the counter.
func (c *counter) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == c.authorize:
			q := r.URL.Query()
			c.add(func(c *Counts) {
				c.Authorizations++
				if !q.Has("request_uri") { // else its scope was counted when pushed
					c.Scopes = append(c.Scopes, q.Get("scope"))
				}
			})
		case r.URL.Path == c.pushed && r.Method == http.MethodPost:
			scope := readForm(r).Get("scope")
			c.add(func(c *Counts) { c.Scopes = append(c.Scopes, scope) })
		case r.URL.Path == c.register && r.Method == http.MethodPost:
			c.add(func(c *Counts) { c.Registrations++ })
		case r.URL.Path == c.token && r.Method == http.MethodPost:
			gt := readForm(r).Get("grant_type")
			c.add(func(c *Counts) { c.Grants[gt]++ })
		}
		next.ServeHTTP(w, r)
	})
}

func (c *counter) add(f func(*Counts)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	f(&c.c)
}

// counts returns a copy of the counts so far.
func (c *counter) counts() Counts {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := c.c
	out.Grants = maps.Clone(c.c.Grants)
	out.Scopes = slices.Clone(c.c.Scopes)
	return out
}

// readForm returns the form of a POST request, leaving its body readable
// for the server.
func readForm(r *http.Request) url.Values {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxTokenForm))
	r.Body = struct {
		io.Reader
		io.Closer
	}{io.MultiReader(bytes.NewReader(body), r.Body), r.Body}
	if err != nil {
		return nil
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		return nil
	}
	return form
}
