package stepup

import (
	"net/netip"
	"net/url"
	"strings"
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

// isLoopbackHost reports whether host names the local machine: localhost or
// a name under it (RFC 6761 §6.3), also written as an absolute name with a
// trailing dot, which resolvers answer alike, or a loopback address.
func isLoopbackHost(host string) bool {
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.Unmap().IsLoopback()
}

// validateResourceMetadata returns raw if an Escalator may be given it as a
// resource_metadata URL for a resource at res (RFC 9728 §7.7, RFC 9728 §7.7,
// MCP security best practices, SSRF), or "" and the reason it was refused.
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
	case o.scheme == "http" && !isLoopbackHost(o.host):
		return "", "plain http to a host other than loopback"
	case o == res:
		return raw, ""
	case !allowCrossOrigin:
		return "", "origin differs from the resource's"
	}
	host := strings.TrimSuffix(o.host, ".") // an absolute name is the same host
	if a, err := netip.ParseAddr(host); err == nil {
		a = a.Unmap()
		if a.IsLinkLocalUnicast() || a.IsLinkLocalMulticast() || a.IsUnspecified() || a.IsMulticast() {
			return "", "link-local or special address"
		}
		if (a.IsPrivate() || a.IsLoopback()) && !isInternalHost(res.host) {
			return "", "private address for a public resource"
		}
	} else if endsInNumber(host) {
		return "", "numeric host that is not an IP address in standard form"
	} else if isLoopbackHost(host) && !isInternalHost(res.host) {
		return "", "loopback host for a public resource"
	}
	return raw, ""
}

// endsInNumber reports whether the last DNS label of host is all digits or
// 0x and hex digits: WHATWG URL's "ends in a number" test. Such a host is
// no DNS name but an IPv4 address in one of inet_aton's shorthands
// (0xa9fea9fe, 2852039166, 169.254.43518, 0251.0376.0251.0376, 127.1, 0),
// which the cgo resolver, curl and browsers turn into an address that the
// checks on addresses never saw; none of them is worth decoding.
func endsInNumber(host string) bool {
	last := host[strings.LastIndexByte(host, '.')+1:]
	if len(last) >= 2 && last[0] == '0' && (last[1] == 'x' || last[1] == 'X') {
		return strings.Trim(last[2:], "0123456789abcdefABCDEF") == ""
	}
	return last != "" && strings.Trim(last, "0123456789") == ""
}

// isInternalHost reports whether host is a loopback name or a loopback or
// private address: a resource there may point at metadata next to it.
func isInternalHost(host string) bool {
	if isLoopbackHost(host) {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.Unmap().IsPrivate()
}
