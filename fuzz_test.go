package stepup_test

// Fuzz targets for what a resource server controls and the Transport acts
// on, besides the challenge parser and its Bearer/DPoP view (FuzzParseChallenges,
// FuzzOAuthChallenge): whole responses (status, WWW-Authenticate,
// DPoP-Nonce, Location) and resource_metadata URLs.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"

	"github.com/stepup-go/stepup"
)

// fuzzResource is the resource the fuzzed Transport holds its token for.
const fuzzResource = "https://api.example/mcp"

// fuzzServer answers every request, to any origin, with the same response,
// built from the fuzzer's input, and records what it was sent.
type fuzzServer struct {
	status   int
	header   http.Header
	mu       sync.Mutex
	requests []fuzzRequest
}

type fuzzRequest struct {
	url  *url.URL
	auth string
	body string
}

func (s *fuzzServer) RoundTrip(req *http.Request) (*http.Response, error) {
	var body []byte
	if req.Body != nil {
		body, _ = io.ReadAll(req.Body)
		req.Body.Close()
	}
	s.mu.Lock()
	s.requests = append(s.requests, fuzzRequest{url: req.URL, auth: req.Header.Get("Authorization"), body: string(body)})
	s.mu.Unlock()
	return &http.Response{
		StatusCode: s.status,
		Header:     s.header.Clone(), // so that a change shows against s.header
		Body:       io.NopCloser(strings.NewReader("server body")),
		Request:    req,
	}, nil
}

func (s *fuzzServer) sent() []fuzzRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]fuzzRequest(nil), s.requests...)
}

// fuzzEscalation is what one Escalator call was asked.
type fuzzEscalation struct {
	key string // reason and challenge: the same twice in one request is a loop
	req *stepup.EscalationRequest
}

// Flags of FuzzTransport's input, one bit or field each.
const (
	fzToken         = 1 << iota // the source starts with a token
	fzRefresh                   // it has a refresh token
	fzDPoP                      // tokens are DPoP-bound
	fzExpired                   // the first token has expired
	fzRefreshFails              // the RefreshFunc fails
	fzPost                      // the first request has a replayable body
	fzCrossOrigin               // Transport.AllowCrossOriginMetadata
	fzEscalatedBare             // escalated tokens carry no refresh token
	fzEscShift      = 8         // 2 bits: the Escalator returns a token, declines, fails or panics
	fzReplayShift   = 10        // 2 bits: MaxReplays 0 (default), -1, 1 or 3
	// fzRefreshDown makes a failing RefreshFunc fail for now (the token
	// endpoint is down) rather than refuse the refresh token
	// (invalid_grant).
	fzRefreshDown = 1 << 12
)

// Whatever a server answers — status, challenges, DPoP-Nonce, a Location
// sending the client to another origin or back — the Transport neither
// panics nor loops, and the token stays home. Per request (each hop of a
// redirect chain is one): at most MaxReplays+1 sends, at most MaxReplays
// Escalator calls and never two for the same challenge and reason (
// §3), at most one refresh per challenge plus one for an expired token
// , and at most one remedy in all, since the response never changes
// (RFC 9110 §15.5.2); none of it for a response from another origin; the
// token only on requests to the resource's origin (RFC 6750 §5.3); the
// caller's request unchanged (the RoundTripper contract); a replayed body
// byte-identical; and either the server's response, status, header and
// body untouched, or a *ChallengeError naming the status. What reaches the
// Escalator is checked as in FuzzResourceMetadata.
func FuzzTransport(f *testing.F) {
	const tok = fzToken | fzRefresh
	for _, s := range []struct {
		status     int
		header     string
		nonce, loc string
		flags      uint16
	}{
		{403, `Bearer error="insufficient_scope", scope="a b", resource_metadata="https://api.example/prm"`, "", "", tok},
		{403, `Bearer error="insufficient_scope", scope="a", resource_metadata="https://169.254.169.254/"`, "", "", tok | fzCrossOrigin},
		{403, `Bearer scope="a"`, "", "", tok | fzPost},
		{401, `Bearer error="invalid_token"`, "", "", tok},
		{401, `Bearer error="invalid_token"`, "", "", tok | fzRefreshFails | fzExpired},
		{401, `Bearer error="invalid_token"`, "", "", tok | fzRefreshFails | fzRefreshDown},
		{401, `Bearer error="invalid_token"`, "", "", tok | fzRefreshFails | fzRefreshDown | fzExpired},
		{401, "", "", "", fzToken},
		{401, `DPoP error="use_dpop_nonce", algs="ES256"`, "n-1", "", tok | fzDPoP},
		{401, `Bearer realm="x", DPoP error="use_dpop_nonce"`, "n-1", "", fzToken | fzDPoP | 3<<fzReplayShift},
		{401, `Bearer error="insufficient_user_authentication", acr_values="a b", max_age="0", scope="s"`, "", "", tok | 1<<fzEscShift},
		{401, `Bearer error="insufficient_claims", claims="eyJhIjoxfQ=="`, "", "", tok | 2<<fzEscShift},
		{403, `Bearer error="insufficient_scope", scope="a", scope="b"`, "", "", tok | 3<<fzEscShift},
		{403, `Basic realm="x", Bearer error="insufficient_scope", scope="a", DPoP algs="ES256"`, "", "", tok | fzPost},
		{307, `Bearer error="insufficient_scope", scope="a"`, "", "https://evil.example/steal", tok},
		{302, "", "", "//evil.example/x", tok},
		{308, "", "", "https://api.example:443/mcp/again", tok | fzPost},
		{301, "", "", "https://API.example./mcp", tok},
		{303, "", "", "https://api.example@evil.example/", tok},
		{307, "", "", "http://api.example/mcp", tok},
		{401, `Bearer realm="x"`, "", "", tok | fzPost | fzEscalatedBare},
		{401, "", "", "", tok | fzPost | fzEscalatedBare},
		{403, `Bearer scope="a", scope="b", error="insufficient_scope"`, "", "", tok | fzPost},
		{403, `Bearer error="insufficient_scope, scope="a"`, "", "", tok | fzPost},
	} {
		f.Add(s.status, s.header, s.nonce, s.loc, s.flags)
	}
	f.Fuzz(func(t *testing.T, status int, header, nonce, location string, flags uint16) {
		if status < 100 || status > 599 {
			status = http.StatusUnauthorized
		}
		srv := &fuzzServer{status: status, header: http.Header{}}
		if header != "" {
			srv.header["Www-Authenticate"] = strings.Split(header, "\n")
		}
		if nonce != "" {
			srv.header["Dpop-Nonce"] = []string{nonce}
		}
		if location != "" {
			srv.header["Location"] = []string{location}
		}
		tokType := "Bearer"
		if flags&fzDPoP != 0 && flags&fzToken != 0 {
			tokType = "DPoP" // escalations and refreshes keep the type
		}

		// Every token the source can hold, so that a header carrying
		// anything else is caught.
		var issued sync.Map
		var seq atomic.Int32
		mint := func(kind string) *oauth2.Token {
			tk := &oauth2.Token{AccessToken: kind + "-" + strconv.Itoa(int(seq.Add(1))), TokenType: tokType}
			issued.Store(tokType+" "+tk.AccessToken, true)
			return tk
		}
		var first *oauth2.Token
		if flags&fzToken != 0 {
			first = mint("at")
			if flags&fzRefresh != 0 {
				first.RefreshToken = "rt"
			}
			if flags&fzExpired != 0 {
				first.Expiry = time.Unix(1, 0)
			}
		}
		var refreshes atomic.Int32

		var escMu sync.Mutex
		var escalations []fuzzEscalation
		escalator := tokenEscalator(func(_ context.Context, req *stepup.EscalationRequest) (*oauth2.Token, error) {
			escMu.Lock()
			escalations = append(escalations, fuzzEscalation{key: escalationKey(req), req: req})
			escMu.Unlock()
			switch flags >> fzEscShift & 3 {
			case 1:
				return nil, stepup.ErrDeclined
			case 2:
				return nil, errors.New("authorization server unreachable")
			case 3:
				panic("consent page crashed")
			}
			tk := mint("escalated")
			if flags&fzEscalatedBare == 0 {
				tk.RefreshToken = "rt2"
			}
			return tk, nil
		})
		ts, err := stepup.NewTokenSource(fuzzResource, first, stepup.WithRefreshFunc(func(context.Context, *oauth2.Token, string) (*oauth2.Token, error) {
			refreshes.Add(1)
			switch {
			case flags&fzRefreshFails != 0 && flags&fzRefreshDown != 0:
				return nil, errors.New("token endpoint: 503 Service Unavailable")
			case flags&fzRefreshFails != 0:
				return nil, fmt.Errorf("token endpoint: %w", stepup.ErrInvalidGrant)
			}
			return mint("refreshed"), nil
		}), stepup.WithEscalator(escalator))
		require.NoError(t, err)
		var nonces atomic.Int32
		tr := &stepup.Transport{
			Base:                     srv,
			Source:                   ts,
			MaxReplays:               [...]int{0, -1, 1, 3}[flags>>fzReplayShift&3],
			AllowCrossOriginMetadata: flags&fzCrossOrigin != 0,
			DPoPNonce:                func(*http.Request, string) error { nonces.Add(1); return nil },
		}
		replays := tr.MaxReplays
		switch {
		case replays == 0:
			replays = stepup.DefaultMaxReplays
		case replays < 0:
			replays = 0
		}
		const payload = `{"jsonrpc":"2.0","method":"tools/call"}`

		cur, err := url.Parse(fuzzResource + "/tools")
		require.NoError(t, err)
		resourceURL, _ := url.Parse(fuzzResource)
		for hop := 0; hop < 4; hop++ {
			sentBefore, refreshesBefore, noncesBefore := len(srv.sent()), refreshes.Load(), nonces.Load()
			escMu.Lock()
			escBefore := len(escalations)
			escMu.Unlock()
			req := (&http.Request{Method: http.MethodGet, URL: cur, Host: cur.Host, Header: http.Header{"Accept": {"application/json"}}}).WithContext(context.Background())
			if hop == 0 && flags&fzPost != 0 {
				req.Method = http.MethodPost
				req.Body = io.NopCloser(strings.NewReader(payload))
				req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader(payload)), nil }
				req.ContentLength = int64(len(payload))
			}
			headerBefore := req.Header.Clone()

			resp, err := tr.RoundTrip(req)

			home := sameOrigin(cur, resourceURL)
			sent := srv.sent()[sentBefore:]
			escMu.Lock()
			escs := append([]fuzzEscalation(nil), escalations[escBefore:]...)
			escMu.Unlock()
			assert.Equal(t, headerBefore, req.Header, "the caller's request was modified")
			require.NotEmpty(t, sent)
			assert.LessOrEqual(t, len(sent), replays+1, "sends in one request")
			assert.LessOrEqual(t, len(escs), replays, "Escalator calls in one request")
			// One remedy per request: the response never changes, so
			// whatever comes back after the first remedy is the same
			// challenge (RFC 9110 §15.5.2). A refresh before sending an expired
			// token answers no challenge; a failed one remedies nothing.
			remedies := len(escs) + int(nonces.Load()-noncesBefore)
			if flags&fzRefreshFails == 0 {
				remedies += int(refreshes.Load() - refreshesBefore)
				if hop == 0 && flags&(fzToken|fzRefresh|fzExpired) == fzToken|fzRefresh|fzExpired {
					remedies--
				}
			}
			assert.LessOrEqual(t, remedies, 1, "remedies in one request for one unchanging response")
			seen := map[string]bool{}
			for _, e := range escs {
				assert.False(t, seen[e.key], "the same challenge escalated twice in one request: %s", e.key)
				seen[e.key] = true
				checkEscalationRequest(t, e.req, tr.AllowCrossOriginMetadata)
			}
			maxRefreshes := int32(1)
			if flags&fzExpired != 0 {
				maxRefreshes = 2
			}
			assert.LessOrEqual(t, refreshes.Load()-refreshesBefore, maxRefreshes, "refreshes in one request")
			if !home {
				assert.Empty(t, escs, "a challenge from another origin was escalated")
				assert.Equal(t, refreshesBefore, refreshes.Load(), "a challenge from another origin caused a refresh")
				assert.Equal(t, noncesBefore, nonces.Load(), "another origin's DPoP nonce was taken")
			}
			for _, r := range sent {
				if r.auth == "" {
					continue
				}
				_, known := issued.Load(r.auth)
				assert.True(t, known, "an Authorization the source never held: %q", r.auth)
				assert.True(t, sameOrigin(r.url, resourceURL), "the token went to %s", r.url.Redacted())
			}
			if req.Method == http.MethodPost {
				for i, r := range sent {
					assert.Equal(t, payload, r.body, "send %d of the body", i)
				}
			}

			if err != nil {
				var ee *stepup.ChallengeError
				require.ErrorAs(t, err, &ee, "an error that is not the documented one")
				if flags>>fzEscShift&3 == 0 {
					// Escalations succeed: the error is the guard's, or
					// the refresh's, never a remedy failing unasked.
					ok := false
					for _, sentinel := range []error{stepup.ErrExhausted, stepup.ErrReplayLimit, stepup.ErrRefreshFailed, stepup.ErrInvalidGrant} {
						ok = ok || errors.Is(err, sentinel)
					}
					require.True(t, ok, "an escalation that succeeded failed the request: %v", err)
				}
				assert.Equal(t, status, ee.Status)
				return
			}
			assert.Equal(t, status, resp.StatusCode)
			assert.Equal(t, srv.header, resp.Header, "the header came back altered")
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			assert.Equal(t, "server body", string(b), "the body came back read or altered")

			if location == "" || status < 300 || status > 399 {
				return
			}
			next, err := cur.Parse(location)
			if err != nil || next.Host == "" {
				return
			}
			cur = next
		}
	})
}

// escalationKey is what makes two escalations the same one: why, and the
// challenge they answer ('s key, minus the origin, which is fixed
// within a request).
func escalationKey(req *stepup.EscalationRequest) string {
	c := req.Challenge
	return strings.Join([]string{
		req.Reason.String(), strings.ToLower(c.Scheme), c.Error, sortedScopes(c.Scope),
		strings.Join(c.ACRValues, " "), strconv.Itoa(c.MaxAge), string(c.Claims),
	}, "|")
}

func sortedScopes(s stepup.Scopes) string {
	c := append([]string(nil), s...)
	for i := range c {
		for j := i + 1; j < len(c); j++ {
			if c[j] < c[i] {
				c[i], c[j] = c[j], c[i]
			}
		}
	}
	return strings.Join(c, " ")
}

// checkEscalationRequest checks what an Escalator is given: no token and no
// body on the request (its documentation), the source's resource, and a
// resource_metadata that is safe to fetch.
func checkEscalationRequest(t *testing.T, er *stepup.EscalationRequest, crossOrigin bool) {
	t.Helper()
	assert.Equal(t, fuzzResource, er.Resource)
	if assert.NotNil(t, er.Request) {
		assert.Empty(t, er.Request.Header.Get("Authorization"), "the Escalator's request carries the token")
		assert.Nil(t, er.Request.Body)
	}
	if er.ResourceMetadata != "" {
		assert.Equal(t, er.Challenge.ResourceMetadata, er.ResourceMetadata, "a validated URL is passed on as received")
		checkSafeMetadata(t, er.ResourceMetadata, fuzzResource, crossOrigin)
	}
}

// Whatever URL a 403 puts in resource_metadata, the Escalator sees it only
// if it is safe to fetch, and "" otherwise (EscalationRequest's doc,
// §5, RFC 9728 §7.7, MCP security best practices, SSRF): an absolute http(s) URL; https unless the host
// is loopback; the resource's origin unless AllowCrossOriginMetadata; when
// of another origin, never a link-local, unspecified or multicast address,
// nor a private or loopback one for a public resource. The resources vary:
// public by name and by IPv6 address, private, and loopback.
func FuzzResourceMetadata(f *testing.F) {
	for _, s := range []struct {
		meta        string
		resource    uint8
		crossOrigin bool
	}{
		{"https://api.example/.well-known/oauth-protected-resource/mcp", 0, false},
		{"https://as.example/.well-known/oauth-protected-resource", 0, true},
		{"http://169.254.169.254/latest/meta-data/", 0, true},
		{"https://[::ffff:169.254.169.254]/", 0, true},
		{"https://[fe80::1%25en0]/", 1, true},
		{"https://10.0.0.1/prm", 0, true},
		{"https://10.0.0.1/prm", 2, true},
		{"http://127.0.0.1:8080/.well-known/oauth-protected-resource", 1, false},
		{"http://localhost:3000/prm", 3, true},
		{"HTTPS://API.EXAMPLE:443/prm", 0, false},
		{"https://api.example:0443/prm", 0, false},
		{"https://api.example@evil.example/prm", 0, false},
		{"https://[2001:db8::1]:8443/prm", 4, false},
		{"javascript:alert(1)", 0, true},
		{"//evil.example/prm", 0, true},
		{"https://169.254.169.254./prm", 0, true},
	} {
		f.Add(s.meta, s.resource, s.crossOrigin)
	}
	resources := [...]string{
		"https://api.example/mcp",
		"http://127.0.0.1:8080/mcp",
		"https://10.1.2.3/mcp",
		"http://localhost:3000/mcp",
		"https://[2001:db8::1]:8443/mcp",
	}
	f.Fuzz(func(t *testing.T, meta string, which uint8, crossOrigin bool) {
		quoted, ok := quoteString(meta)
		if !ok {
			t.Skip("cannot be sent in a quoted-string")
		}
		resource := resources[int(which)%len(resources)]
		var seen []string
		ts, err := stepup.NewTokenSource(resource, &oauth2.Token{AccessToken: "at"},
			stepup.WithEscalator(tokenEscalator(func(_ context.Context, req *stepup.EscalationRequest) (*oauth2.Token, error) {
				seen = append(seen, req.ResourceMetadata)
				return nil, stepup.ErrDeclined
			})))
		require.NoError(t, err)
		srv := &hostileStatic{status: http.StatusForbidden, header: http.Header{
			"Www-Authenticate": {`Bearer error="insufficient_scope", scope="more", resource_metadata=` + quoted},
		}}
		tr := &stepup.Transport{Base: srv, Source: ts, AllowCrossOriginMetadata: crossOrigin}
		req, err := http.NewRequest(http.MethodGet, resource, nil)
		require.NoError(t, err)

		_, err = tr.RoundTrip(req)

		var ee *stepup.ChallengeError
		require.ErrorAs(t, err, &ee)
		require.Len(t, seen, 1, "the challenge is valid whatever its resource_metadata")
		if seen[0] != "" {
			assert.Equal(t, meta, seen[0], "a validated URL is passed on as received")
			checkSafeMetadata(t, seen[0], resource, crossOrigin)
		}
	})
}

// quoteString returns s as an RFC 9110 quoted-string, or false when s holds
// a byte no quoted-string can carry (controls other than HTAB, and DEL).
func quoteString(s string) (string, bool) {
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c == '\t' || c >= 0x20 && c != 0x7f:
			b.WriteByte(c)
		default:
			return "", false
		}
	}
	b.WriteByte('"')
	return b.String(), true
}

// checkSafeMetadata fails t unless raw, a resource_metadata URL an Escalator
// was given for resource, is one the Transport documents as safe.
func checkSafeMetadata(t *testing.T, raw, resource string, crossOrigin bool) {
	t.Helper()
	u, err := url.Parse(raw)
	require.NoError(t, err, "the Escalator got something that is not a URL: %q", raw)
	res, err := url.Parse(resource)
	require.NoError(t, err)
	scheme := strings.ToLower(u.Scheme)
	require.Contains(t, []string{"http", "https"}, scheme, "not http(s): %q", raw)
	host := u.Hostname()
	require.NotEmpty(t, host, "no host: %q", raw)
	addr, isAddr := hostAddr(host)
	if scheme == "http" {
		assert.True(t, isLoopbackName(host) || isAddr && addr.IsLoopback(), "plain http to a host that is not loopback: %q", raw)
	}
	if sameOrigin(u, res) {
		return
	}
	assert.True(t, crossOrigin, "another origin than the resource's: %q", raw)
	if isAddr {
		assert.False(t, addr.IsLinkLocalUnicast() || addr.IsLinkLocalMulticast() || addr.IsUnspecified() || addr.IsMulticast(),
			"a link-local or special address: %q", raw)
	}
	if !isInternal(res.Hostname()) {
		assert.False(t, isLoopbackName(host) || isAddr && (addr.IsLoopback() || addr.IsPrivate()),
			"a private or loopback target for a public resource: %q", raw)
	}
}

// hostAddr returns the address host names by itself, without DNS: an IP
// literal, or one of the numeric IPv4 forms that inet_aton, and so the cgo
// resolver, curl and browsers, accept (0xa9fea9fe, 2852039166,
// 169.254.43518, 0251.0376.0251.0376, 127.1), with or without a trailing
// dot.
func hostAddr(host string) (netip.Addr, bool) {
	host = strings.TrimSuffix(host, ".")
	if a, err := netip.ParseAddr(host); err == nil {
		return a.Unmap(), true
	}
	return inetAton(host)
}

// inetAton parses the IPv4 shorthands of inet_aton(3): one to four parts,
// each decimal, octal (leading 0) or hexadecimal (0x), the last filling the
// remaining bytes.
func inetAton(s string) (netip.Addr, bool) {
	parts := strings.Split(s, ".")
	if len(parts) == 0 || len(parts) > 4 {
		return netip.Addr{}, false
	}
	var vals []uint64
	for _, p := range parts {
		base := 10
		switch {
		case strings.HasPrefix(p, "0x") || strings.HasPrefix(p, "0X"):
			base, p = 16, p[2:]
			if p == "" {
				p = "0"
			}
		case len(p) > 1 && p[0] == '0':
			base, p = 8, p[1:]
		}
		v, err := strconv.ParseUint(p, base, 32)
		if err != nil {
			return netip.Addr{}, false
		}
		vals = append(vals, v)
	}
	var ip uint64
	for i, v := range vals[:len(vals)-1] {
		if v > 0xff {
			return netip.Addr{}, false
		}
		ip |= v << (24 - 8*i)
	}
	last := vals[len(vals)-1]
	if last >= 1<<(8*(5-len(vals))) {
		return netip.Addr{}, false
	}
	ip |= last
	return netip.AddrFrom4([4]byte{byte(ip >> 24), byte(ip >> 16), byte(ip >> 8), byte(ip)}), true
}

// isLoopbackName reports whether host is localhost or a name under it
// (RFC 6761 §6.3), also written as an absolute name with a trailing dot,
// which systemd-resolved and other stub resolvers answer with 127.0.0.1 as
// well.
func isLoopbackName(host string) bool {
	h := strings.TrimSuffix(asciiLower(host), ".")
	return h == "localhost" || strings.HasSuffix(h, ".localhost")
}

func isInternal(host string) bool {
	if isLoopbackName(host) {
		return true
	}
	a, ok := hostAddr(host)
	return ok && (a.IsLoopback() || a.IsPrivate())
}

// sameOrigin reports whether a and b have the same scheme, host and port
// (RFC 6454), with the scheme's default port filled in. Case is folded in
// ASCII only.
func sameOrigin(a, b *url.URL) bool {
	return asciiLower(a.Scheme) == asciiLower(b.Scheme) && asciiLower(a.Hostname()) == asciiLower(b.Hostname()) &&
		portNumber(a) == portNumber(b)
}

func asciiLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

func portNumber(u *url.URL) int {
	if p := u.Port(); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil {
			return -1
		}
		return n
	}
	if strings.EqualFold(u.Scheme, "https") {
		return 443
	}
	return 80
}
