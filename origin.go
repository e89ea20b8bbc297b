package stepup

import (
	"net/netip"
	"net/url"
	"strings"

	"github.com/stepup-go/stepup/internal/netguard"
)

// origin is the scheme, host and port of a URL (RFC 6454), the unit tokens
// are bound to.
type origin struct {
	scheme string // lower case
	host   string // lower case, without brackets
	port   string // explicit or the scheme's default
}

// originOf returns u's origin, or false when u is not an absolute http(s)
// URL with a host.
func originOf(u *url.URL) (origin, bool) {
	scheme := strings.ToLower(u.Scheme)
	if (scheme != "http" && scheme != "https") || u.Hostname() == "" {
		return origin{}, false
	}
	return origin{scheme: scheme, host: strings.ToLower(u.Hostname()), port: portOf(scheme, u.Port())}, true
}

func portOf(scheme, port string) string {
	if port != "" {
		return port
	}
	if strings.EqualFold(scheme, "https") {
		return "443"
	}
	return "80"
}

// matches reports whether u has origin o. It does not allocate: it runs on
// every request.
func (o origin) matches(u *url.URL) bool {
	return u != nil && strings.EqualFold(u.Scheme, o.scheme) &&
		strings.EqualFold(u.Hostname(), o.host) && portOf(o.scheme, u.Port()) == o.port
}

func (o origin) String() string {
	host := o.host
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	if o.port == portOf(o.scheme, "") {
		return o.scheme + "://" + host
	}
	return o.scheme + "://" + host + ":" + o.port
}

// validateResourceMetadata returns raw if an Escalator may be given it as a
// resource_metadata URL for a resource at res (RFC 9728 §7.7; MCP security
// best practices, SSRF), or "" and the reason it was refused: an absolute
// http(s) URL without user information or fragment, https unless on
// loopback, of the resource's origin unless allowCrossOrigin, and then
// never of a link-local or special address, nor of a loopback or private
// one unless the resource itself is there.
func validateResourceMetadata(raw string, res origin, allowCrossOrigin bool) (string, string) {
	if raw == "" {
		return "", ""
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "", "not a URL"
	}
	o, ok := originOf(u)
	switch {
	case !ok:
		return "", "not an absolute http(s) URL"
	case u.User != nil:
		return "", "carries user information"
	case u.Fragment != "":
		return "", "has a fragment"
	case o.scheme == "http" && !netguard.IsLoopbackHost(o.host):
		return "", "plain http to a host other than loopback"
	case o == res:
		return raw, ""
	case !allowCrossOrigin:
		return "", "origin differs from the resource's"
	}
	p := netguard.Policy{Loopback: netguard.IsLoopbackHost(res.host), Private: isPrivateHost(res.host)}
	if err := p.CheckURL(u); err != nil {
		return "", err.Error()
	}
	return raw, ""
}

// isPrivateHost reports whether host is a loopback name or a loopback or
// private address: a resource there may point at metadata in its network.
func isPrivateHost(host string) bool {
	if netguard.IsLoopbackHost(host) {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.Unmap().IsPrivate()
}
