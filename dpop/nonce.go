package dpop

import (
	"net/http"
	"net/url"
	"strings"
	"sync"
)

// maxNonceOrigins bounds the origins a [Nonces] remembers: a client talks
// to a handful of servers, and a hostile redirect chain must not grow the
// cache without end.
const maxNonceOrigins = 64

// maxNonceLen bounds a nonce kept: RFC 9449 §8.1 sets no length, real
// ones are a few dozen characters, and every proof carries it.
const maxNonceLen = 512

// Nonces keeps the last nonce each server gave (RFC 9449 §8, §9), by
// origin: the authorization server's and the resource server's are
// different nonces. The zero value is ready; it is safe for concurrent
// use.
type Nonces struct {
	mu sync.Mutex
	m  map[string]string
}

// Get returns the nonce kept for u's origin, or "".
func (n *Nonces) Get(u *url.URL) string {
	o := origin(u)
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.m[o]
}

// Set keeps nonce for u's origin. A nonce that is not 1*NQCHAR (RFC 9449
// §8.1), or longer than 512 characters, is not kept and Set reports false.
func (n *Nonces) Set(u *url.URL, nonce string) bool {
	if !ValidNonce(nonce) || len(nonce) > maxNonceLen {
		return false
	}
	o := origin(u)
	if o == "" {
		return false
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.m == nil {
		n.m = make(map[string]string)
	}
	if _, ok := n.m[o]; !ok && len(n.m) >= maxNonceOrigins {
		for k := range n.m { // evict one: any will do, it is only a hint
			delete(n.m, k)
			break
		}
	}
	n.m[o] = nonce
	return true
}

// Observe keeps the nonce of a response from u: a server may send a new
// one with any response (RFC 9449 §8.2). A response with no DPoP-Nonce
// field, or with more than one, changes nothing. It reports whether a
// nonce was kept.
func (n *Nonces) Observe(u *url.URL, h http.Header) bool {
	v, ok := HeaderNonce(h)
	return ok && n.Set(u, v)
}

// HeaderNonce returns the one DPoP-Nonce field of h (RFC 9449 §8), and
// false when there is none, more than one, or it is not a nonce.
func HeaderNonce(h http.Header) (string, bool) {
	vs := h.Values("DPoP-Nonce")
	if len(vs) != 1 || !ValidNonce(vs[0]) {
		return "", false
	}
	return vs[0], true
}

// ValidNonce reports whether s is a nonce: 1*NQCHAR, NQCHAR = %x21 /
// %x23-5B / %x5D-7E (RFC 9449 §8.1).
func ValidNonce(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x21 || c > 0x7e || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}

// origin is u's scheme, host and port, lowercased, with the default port
// made explicit, so that two spellings of one server share a nonce.
func origin(u *url.URL) string {
	if u == nil || u.Host == "" {
		return ""
	}
	scheme := strings.ToLower(u.Scheme)
	host, port := strings.ToLower(u.Hostname()), u.Port()
	if port == "" {
		switch scheme {
		case "https":
			port = "443"
		case "http":
			port = "80"
		}
	}
	return scheme + "://" + host + ":" + port
}

// HTU is the htu claim for a request to u: its URI without query and
// fragment (RFC 9449 §4.2), and without user information.
func HTU(u *url.URL) string {
	v := url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path, RawPath: u.RawPath}
	return v.String()
}
