// Package netguard decides which hosts and addresses requests made on a
// server's word may reach. URLs in challenges and metadata documents come
// from servers the user may not trust: RFC 9728 §7.7 and the MCP security
// best practices ask clients to guard against server-side request forgery
// (cloud metadata services on link-local addresses, private networks,
// loopback) and against plain http. The root package checks
// resource_metadata URLs with it, package discovery every request it
// sends, at the URL and again at dial time.
package netguard

import (
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"strings"
	"syscall"
)

// ErrRefused says that a request was not sent because its URL, or the
// address its host resolved to, is one the policy keeps requests from:
// plain http to a host other than loopback, a link-local, private or
// loopback address that is not allowed, or an address no request should
// go to (unspecified, multicast, broadcast, reserved).
var ErrRefused = errors.New("stepup: request target refused")

// Policy says which targets requests may reach. The zero value allows
// public addresses and names only.
type Policy struct {
	Loopback  bool // loopback addresses and names: for a resource on loopback
	Private   bool // private and shared address space
	LinkLocal bool // link-local addresses, where cloud metadata services listen
}

// Address ranges beside those netip classifies.
var (
	// IPv6 ranges whose addresses carry an IPv4 address, which decides.
	nat64      = netip.MustParsePrefix("64:ff9b::/96")   // RFC 6052: in the last 32 bits
	nat64Local = netip.MustParsePrefix("64:ff9b:1::/48") // RFC 8215: in the last 32 bits
	ipv4Compat = netip.MustParsePrefix("::/96")          // RFC 4291 §2.5.5.1, deprecated: in the last 32 bits
	sixToFour  = netip.MustParsePrefix("2002::/16")      // RFC 3056: in bits 16 to 47

	// Ranges no request should go to.
	neverReach = []netip.Prefix{
		netip.MustParsePrefix("0.0.0.0/8"),   // RFC 791 "this network"; Linux dials 0.0.0.0 as loopback
		netip.MustParsePrefix("240.0.0.0/4"), // reserved, and 255.255.255.255 broadcast
		netip.MustParsePrefix("100::/64"),    // RFC 6666 discard-only
		netip.MustParsePrefix("2001::/32"),   // RFC 4380 Teredo: an obfuscated IPv4 address inside
	}
	// Ranges treated as private beside RFC 1918 and RFC 4193.
	privateAlso = []netip.Prefix{
		netip.MustParsePrefix("100.64.0.0/10"), // RFC 6598 shared (carrier-grade NAT); some clouds' metadata services
		netip.MustParsePrefix("198.18.0.0/15"), // RFC 2544 benchmarking
		netip.MustParsePrefix("fec0::/10"),     // RFC 3879 site-local, deprecated
		netip.MustParsePrefix("2001:db8::/32"), // RFC 3849 documentation
	}
)

// CheckAddr returns an error wrapping [ErrRefused] if p keeps requests
// from a.
func (p Policy) CheckAddr(a netip.Addr) error {
	a = a.Unmap()
	if a.Is6() {
		b := a.As16()
		switch {
		case nat64.Contains(a) || nat64Local.Contains(a) ||
			ipv4Compat.Contains(a) && !a.IsLoopback() && !a.IsUnspecified():
			return p.CheckAddr(netip.AddrFrom4([4]byte(b[12:])))
		case sixToFour.Contains(a):
			return p.CheckAddr(netip.AddrFrom4([4]byte(b[2:6])))
		}
	}
	var class string
	switch {
	case !a.IsValid():
		class = "an invalid"
	case a.IsUnspecified() || a.IsMulticast() || a.IsInterfaceLocalMulticast() || inAny(a, neverReach):
		return refused("%s is not an address requests may go to", a)
	case a.IsLinkLocalUnicast() || a.IsLinkLocalMulticast():
		if p.LinkLocal {
			return nil
		}
		class = "a link-local"
	case a.IsLoopback():
		if p.Loopback {
			return nil
		}
		class = "a loopback"
	case a.IsPrivate() || inAny(a, privateAlso):
		if p.Private {
			return nil
		}
		class = "a private"
	default:
		return nil
	}
	return refused("%s is %s address", a, class)
}

func inAny(a netip.Addr, prefixes []netip.Prefix) bool {
	for _, p := range prefixes {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

func refused(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrRefused, fmt.Sprintf(format, args...))
}

// CheckURL returns an error wrapping [ErrRefused] if p keeps requests
// from u: a scheme other than http and https, plain http to a host that
// is not loopback (RFC 6749 §3.1 and §3.2 require TLS for the
// authorization server's endpoints; RFC 9728 §7.3), user information, or
// a host that is an address p refuses. A host name is checked again on
// the addresses it resolves to, when the connection is dialled.
func (p Policy) CheckURL(u *url.URL) error {
	if u.Scheme != "https" && u.Scheme != "http" {
		return refused("scheme %q", u.Scheme)
	}
	if u.User != nil {
		return refused("URL carries user information")
	}
	host := strings.TrimSuffix(strings.ToLower(u.Hostname()), ".")
	if host == "" {
		return refused("URL has no host")
	}
	if a, err := netip.ParseAddr(host); err == nil {
		if err := p.CheckAddr(a); err != nil {
			return err
		}
		if u.Scheme == "http" && !a.Unmap().IsLoopback() {
			return refused("plain http to %s, which is not loopback", a)
		}
		return nil
	}
	if endsInNumber(host) {
		// inet_aton's shorthands (127.1, 0x7f000001, 2130706433) are
		// read as addresses by some resolvers but not by netip.
		return refused("host %q is an address in a form that is not standard", host)
	}
	if isLoopbackName(host) {
		if !p.Loopback {
			return refused("host %q is loopback", host)
		}
		return nil
	}
	if u.Scheme == "http" {
		return refused("plain http to %q, which is not loopback", host)
	}
	return nil
}

// isLoopbackName reports whether host, lower case without trailing dot,
// is localhost or a name under it (RFC 6761 §6.3).
func isLoopbackName(host string) bool {
	return host == "localhost" || strings.HasSuffix(host, ".localhost")
}

// IsLoopbackHost reports whether host, as [url.URL.Hostname] returns it,
// names the local machine: localhost or a name under it (RFC 6761 §6.3),
// or a loopback address. Requests on behalf of a resource on such a host
// may go to loopback targets.
func IsLoopbackHost(host string) bool {
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	if isLoopbackName(host) {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.Unmap().IsLoopback()
}

// endsInNumber reports whether the last label of host is all digits, or
// 0x and hex digits: the WHATWG URL standard's "ends in a number", which
// makes the host an IPv4 address in one of inet_aton's forms.
func endsInNumber(host string) bool {
	last := host[strings.LastIndexByte(host, '.')+1:]
	if len(last) >= 2 && last[0] == '0' && (last[1] == 'x' || last[1] == 'X') {
		return strings.Trim(last[2:], "0123456789abcdefABCDEF") == ""
	}
	return last != "" && strings.Trim(last, "0123456789") == ""
}

// Control is a [net.Dialer] Control function: it refuses to connect to an
// address p refuses, whatever name resolved to it. It runs after name
// resolution and before the connect system call, so nothing is sent.
func (p Policy) Control(_, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return refused("dialling %q, which is not an IP address and port", address)
	}
	return p.CheckAddr(ap.Addr())
}
