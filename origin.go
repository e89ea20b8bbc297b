package stepup

import (
	"net/netip"
	"net/url"

	"github.com/stepup-go/stepup/internal/netguard"
	"github.com/stepup-go/stepup/internal/weborigin"
)

// validateResourceMetadata returns raw if an Escalator may be given it as a
// resource_metadata URL for a resource at res (RFC 9728 §7.7; MCP security
// best practices, SSRF), or "" and the reason it was refused: an absolute
// http(s) URL without user information or fragment, https unless on
// loopback, of the resource's origin unless allowCrossOrigin, and then
// never of a link-local or special address, nor of a loopback or private
// one unless the resource itself is there.
func validateResourceMetadata(raw string, res weborigin.Origin, allowCrossOrigin bool) (string, string) {
	if raw == "" {
		return "", ""
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "", "not a URL"
	}
	o, ok := weborigin.Of(u)
	switch {
	case !ok:
		return "", "not an absolute http(s) URL"
	case u.User != nil:
		return "", "carries user information"
	case u.Fragment != "":
		return "", "has a fragment"
	case o.Scheme == "http" && !netguard.IsLoopbackHost(o.Host):
		return "", "plain http to a host other than loopback"
	case o == res:
		return raw, ""
	case !allowCrossOrigin:
		return "", "origin differs from the resource's"
	}
	p := netguard.Policy{Loopback: netguard.IsLoopbackHost(res.Host), Private: isPrivateHost(res.Host)}
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
