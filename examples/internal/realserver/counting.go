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

// maxCountedForm bounds the body the counter reads of a token or pushed
// authorization request; they are a few hundred bytes.
const maxCountedForm = 64 << 10

// counter counts the requests to an authorization server's endpoints as
// they pass, by their paths, before the server sees them: a count read
// after a response includes the request that caused it.
type counter struct {
	authorize, register, token, par string // endpoint paths

	mu sync.Mutex
	c  Counts
}

// newCounter counts at these paths; "" for an endpoint the server lacks.
func newCounter(authorize, register, token, par string) *counter {
	return &counter{authorize: authorize, register: register, token: token, par: par, c: Counts{Grants: map[string]int{}}}
}

// wrap returns next behind the counter.
func (c *counter) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == c.authorize:
			q := r.URL.Query()
			c.add(func(c *Counts) {
				c.Authorizations++
				if !q.Has("request_uri") {
					c.Requested = append(c.Requested, q.Get("scope"))
				}
			})
		case c.par != "" && r.URL.Path == c.par && r.Method == http.MethodPost:
			scope := formValue(r, "scope")
			c.add(func(c *Counts) { c.Requested = append(c.Requested, scope) })
		case c.register != "" && r.URL.Path == c.register && r.Method == http.MethodPost:
			c.add(func(c *Counts) { c.Registrations++ })
		case r.URL.Path == c.token && r.Method == http.MethodPost:
			gt := formValue(r, "grant_type")
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
	out.Requested = slices.Clone(c.c.Requested)
	return out
}

// formValue returns the parameter name of a form posted to an endpoint,
// leaving the body readable for the server.
func formValue(r *http.Request, name string) string {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxCountedForm))
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
	return form.Get(name)
}
