// Package weborigin is the one same-origin rule of stepup (RFC 6454): a
// token is bound to an origin, and metadata found for a resource must come
// from the resource's origin.
//
// Two URLs have the same origin when their schemes, hosts and ports are
// the same, the scheme's default port filled in and case folded (RFC 6454
// §4, §5). A host is compared as written: "example.com." and "example.com"
// are different origins, as they are to browsers. The trailing dot of an
// absolute name is no mere spelling: a resolver may expand the name
// without it through its search list, so the two can reach different
// hosts, and a server may route them apart by Host.
package weborigin

import (
	"net/url"
	"strings"
)

// Origin is the scheme, host and port of a URL.
type Origin struct {
	Scheme string // "http" or "https"
	Host   string // lower case, without brackets
	Port   string // explicit or the scheme's default
}

// Of returns u's origin, or false when u is not an absolute http(s) URL
// with a host.
func Of(u *url.URL) (Origin, bool) {
	scheme := strings.ToLower(u.Scheme)
	if (scheme != "http" && scheme != "https") || u.Hostname() == "" {
		return Origin{}, false
	}
	return Origin{Scheme: scheme, Host: strings.ToLower(u.Hostname()), Port: port(scheme, u.Port())}, true
}

// Same reports whether a and b are http(s) URLs of the same origin.
func Same(a, b *url.URL) bool {
	o, ok := Of(a)
	return ok && o.Matches(b)
}

// Matches reports whether u has origin o. It does not allocate: it runs on
// every request.
func (o Origin) Matches(u *url.URL) bool {
	return u != nil && strings.EqualFold(u.Scheme, o.Scheme) &&
		strings.EqualFold(u.Hostname(), o.Host) && port(o.Scheme, u.Port()) == o.Port
}

// String returns the origin's serialization (RFC 6454 §6.2), with the
// port only when it is not the scheme's default.
func (o Origin) String() string {
	host := o.Host
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	if o.Port == port(o.Scheme, "") {
		return o.Scheme + "://" + host
	}
	return o.Scheme + "://" + host + ":" + o.Port
}

func port(scheme, p string) string {
	if p != "" {
		return p
	}
	if strings.EqualFold(scheme, "https") {
		return "443"
	}
	return "80"
}
