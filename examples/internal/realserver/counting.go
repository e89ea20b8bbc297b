package realserver

import (
	"bytes"
	"io"
	"maps"
	"net/http"
	"net/url"
	"sync"
)

// maxTokenForm bounds the token request body the counter reads to learn
// the grant_type; token requests are a few hundred bytes.
const maxTokenForm = 64 << 10

// counter counts the requests to an authorization server's endpoints as
// they pass, by their paths, before the server sees them: a count read
// after a response includes the request that caused it.
type counter struct {
	authorize, register, token string // endpoint paths

	mu sync.Mutex
	c  Counts
}

func newCounter(authorize, register, token string) *counter {
	return &counter{authorize: authorize, register: register, token: token, c: Counts{Grants: map[string]int{}}}
}

// wrap returns next behind the counter.
func (c *counter) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == c.authorize:
			c.add(func(c *Counts) { c.Authorizations++ })
		case r.URL.Path == c.register && r.Method == http.MethodPost:
			c.add(func(c *Counts) { c.Registrations++ })
		case r.URL.Path == c.token && r.Method == http.MethodPost:
			gt := grantType(r)
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
	return out
}

// grantType returns the grant_type of a token request, leaving its body
// readable for the server.
func grantType(r *http.Request) string {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxTokenForm))
	r.Body = struct {
		io.Reader
		io.Closer
	}{io.MultiReader(bytes.NewReader(body), r.Body), r.Body}
	if err != nil {
		return ""
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		return ""
	}
	return form.Get("grant_type")
}
