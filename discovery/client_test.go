package discovery_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/stepup-go/stepup/discovery"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// site is a loopback server that answers from a table of paths and
// records what was asked of it.
type site struct {
	*httptest.Server
	mu     sync.Mutex
	routes map[string]http.HandlerFunc
	log    []string
}

func newSite(t *testing.T) *site {
	s := &site{routes: map[string]http.HandlerFunc{}}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.log = append(s.log, r.URL.RequestURI())
		h := s.routes[r.URL.RequestURI()]
		s.mu.Unlock()
		if h == nil {
			http.NotFound(w, r)
			return
		}
		h(w, r)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *site) json(path, body string) {
	s.handle(path, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, strings.ReplaceAll(body, "{url}", s.URL))
	})
}

func (s *site) handle(path string, h http.HandlerFunc) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.routes[path] = h
}

func (s *site) requests() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.log...)
}

// quick is a Client that does not wait long between retries.
func quick() *discovery.Client {
	return &discovery.Client{RetryWaitMin: time.Millisecond, RetryWaitMax: 5 * time.Millisecond}
}

func closeIdle(t *testing.T, c *discovery.Client) {
	t.Cleanup(c.CloseIdleConnections)
}

func TestProtectedResourcePathInserted(t *testing.T) {
	s := newSite(t)
	s.json("/.well-known/oauth-protected-resource/mcp", `{"resource":"{url}/mcp","authorization_servers":["{url}"],"scopes_supported":["mcp:basic"]}`)
	c := quick()
	closeIdle(t, c)

	d, err := c.ProtectedResource(context.Background(), s.URL+"/mcp", "")
	require.NoError(t, err)
	assert.Equal(t, s.URL+"/mcp", d.Resource)
	assert.Equal(t, []string{s.URL}, d.AuthorizationServers)
	assert.Equal(t, []string{"/.well-known/oauth-protected-resource/mcp"}, s.requests(), "the root location is not asked when the path-inserted one answers")
}

// RFC 9728 §3.3: a document at the root well-known URL names the origin.
func TestProtectedResourceRootNamesOrigin(t *testing.T) {
	for _, named := range []string{"{url}", "{url}/"} {
		s := newSite(t)
		s.json("/.well-known/oauth-protected-resource", `{"resource":"`+named+`","authorization_servers":["{url}"]}`)
		c := quick()
		closeIdle(t, c)

		d, err := c.ProtectedResource(context.Background(), s.URL+"/mcp", "")
		require.NoError(t, err, named)
		assert.Equal(t, strings.ReplaceAll(named, "{url}", s.URL), d.Resource, "the document's resource is the one to send")
		assert.Equal(t, []string{"/.well-known/oauth-protected-resource/mcp", "/.well-known/oauth-protected-resource"}, s.requests())
	}
}

// A document for another resource is never used, wherever it was found
// (RFC 9728 §3.3, the MCP conformance suite's resource-mismatch).
func TestProtectedResourceForAnotherResourceRefused(t *testing.T) {
	for _, tc := range []struct{ name, path, named, metadata string }{
		{"path-inserted names another origin", "/.well-known/oauth-protected-resource/mcp", "https://evil.example.com/mcp", ""},
		{"path-inserted names another path", "/.well-known/oauth-protected-resource/mcp", "{url}/other", ""},
		{"path-inserted names the origin", "/.well-known/oauth-protected-resource/mcp", "{url}", ""},
		{"root names a path", "/.well-known/oauth-protected-resource", "{url}/mcp", ""},
		{"named by the challenge, another origin", "/.well-known/oauth-protected-resource/mcp", "https://evil.example.com/mcp", "/.well-known/oauth-protected-resource/mcp"},
		{"named by the challenge, a sibling path", "/meta", "{url}/mc", "/meta"},
		{"named by the challenge, a sub-path", "/meta", "{url}/mcp/admin", "/meta"},
		{"named by the challenge, another port", "/meta", "http://127.0.0.1:1/mcp", "/meta"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSite(t)
			s.json(tc.path, `{"resource":"`+tc.named+`","authorization_servers":["{url}"]}`)
			c := quick()
			closeIdle(t, c)
			meta := ""
			if tc.metadata != "" {
				meta = s.URL + tc.metadata
			}
			_, err := c.ProtectedResource(context.Background(), s.URL+"/mcp", meta)
			assert.ErrorIs(t, err, discovery.ErrMismatch)
			if tc.path != "/.well-known/oauth-protected-resource" {
				assert.NotContains(t, s.requests(), "/.well-known/oauth-protected-resource",
					"a refused document ends the search: another location is no better")
			}
		})
	}
}

// A document named by the challenge's resource_metadata may name the
// resource's origin or a path above the resource's, as the MCP SDKs
// accept.
func TestProtectedResourceNamedByChallenge(t *testing.T) {
	for _, named := range []string{"{url}/mcp", "{url}", "{url}/", "{url}/api", "{url}/api/"} {
		s := newSite(t)
		s.json("/custom/metadata.json", `{"resource":"`+named+`","authorization_servers":["{url}/tenant1"]}`)
		c := quick()
		closeIdle(t, c)

		resource := s.URL + "/api/mcp"
		if named == "{url}/mcp" {
			resource = s.URL + "/mcp"
		}
		d, err := c.ProtectedResource(context.Background(), resource, s.URL+"/custom/metadata.json")
		require.NoError(t, err, named)
		assert.Equal(t, strings.ReplaceAll(named, "{url}", s.URL), d.Resource)
		assert.Equal(t, []string{"/custom/metadata.json"}, s.requests(), "no well-known location is asked")
	}
}

func TestProtectedResourceNamedByChallengeMissingFallsBack(t *testing.T) {
	s := newSite(t)
	s.json("/.well-known/oauth-protected-resource/mcp", `{"resource":"{url}/mcp"}`)
	c := quick()
	closeIdle(t, c)

	d, err := c.ProtectedResource(context.Background(), s.URL+"/mcp", s.URL+"/gone.json")
	require.NoError(t, err)
	assert.Equal(t, s.URL+"/mcp", d.Resource)
	assert.Equal(t, []string{"/gone.json", "/.well-known/oauth-protected-resource/mcp"}, s.requests())
}

func TestProtectedResourceNotFound(t *testing.T) {
	s := newSite(t)
	s.handle("/.well-known/oauth-protected-resource/mcp", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		io.WriteString(w, "<html>a single-page app answers every path</html>")
	})
	c := quick()
	closeIdle(t, c)

	_, err := c.ProtectedResource(context.Background(), s.URL+"/mcp", "")
	assert.ErrorIs(t, err, discovery.ErrNotFound)
	assert.Equal(t, []string{"/.well-known/oauth-protected-resource/mcp", "/.well-known/oauth-protected-resource"}, s.requests())
}

// Metadata requests are retried on 503, never on 404.
func TestMetadataRetries(t *testing.T) {
	s := newSite(t)
	var tries int
	s.handle("/.well-known/oauth-authorization-server", func(w http.ResponseWriter, r *http.Request) {
		if tries++; tries < 3 {
			w.Header().Set("Retry-After", "3600") // capped by RetryWaitMax
			http.Error(w, "overloaded", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"issuer":%q}`, s.URL)
	})
	c := quick()
	closeIdle(t, c)
	resource := s.URL + "/mcp"

	d, err := c.AuthServer(context.Background(), resource, s.URL)
	require.NoError(t, err)
	assert.Equal(t, s.URL, d.Issuer)
	assert.Equal(t, 3, tries, "two 503 answers, then the document")

	// 404: asked once at each location, no retry.
	_, err = c.AuthServer(context.Background(), resource, s.URL+"/tenant1")
	assert.ErrorIs(t, err, discovery.ErrNotFound)
	assert.Equal(t, []string{
		"/.well-known/oauth-authorization-server", "/.well-known/oauth-authorization-server", "/.well-known/oauth-authorization-server",
		"/.well-known/oauth-authorization-server/tenant1",
		"/.well-known/openid-configuration/tenant1",
		"/tenant1/.well-known/openid-configuration",
	}, s.requests())
}

func TestMetadataRetriesGiveUp(t *testing.T) {
	s := newSite(t)
	var tries int
	s.handle("/.well-known/oauth-authorization-server", func(w http.ResponseWriter, r *http.Request) {
		tries++
		http.Error(w, "broken", http.StatusBadGateway)
	})
	c := quick()
	c.RetryMax = 2
	closeIdle(t, c)

	_, err := c.AuthServer(context.Background(), s.URL, s.URL)
	var se *discovery.StatusError
	require.ErrorAs(t, err, &se, "a 5xx after the retries ends the search: it says nothing about other locations")
	assert.Equal(t, http.StatusBadGateway, se.StatusCode)
	assert.Equal(t, 3, tries)
	assert.NotContains(t, s.requests(), "/.well-known/openid-configuration")
}

// Authorization server metadata: RFC 8414 first, then OpenID Connect
// discovery, path-inserted forms first; the issuer must match exactly.
func TestAuthServerOrderAndIssuer(t *testing.T) {
	s := newSite(t)
	s.json("/tenant1/.well-known/openid-configuration", `{"issuer":"{url}/tenant1","authorization_endpoint":"{url}/tenant1/authorize","token_endpoint":"{url}/tenant1/token"}`)
	c := quick()
	closeIdle(t, c)

	d, err := c.AuthServer(context.Background(), s.URL+"/mcp", s.URL+"/tenant1")
	require.NoError(t, err)
	assert.Equal(t, s.URL+"/tenant1/token", d.TokenEndpoint)
	assert.Equal(t, []string{
		"/.well-known/oauth-authorization-server/tenant1",
		"/.well-known/openid-configuration/tenant1",
		"/tenant1/.well-known/openid-configuration",
	}, s.requests(), "never the root location for an issuer with a path")

	_, err = c.AuthServer(context.Background(), s.URL+"/mcp", s.URL+"/tenant1/")
	assert.ErrorIs(t, err, discovery.ErrMismatch, "the issuer is compared as a string (RFC 8414 §3.3)")

	s.json("/.well-known/oauth-authorization-server", `{"issuer":"https://attacker.example"}`)
	_, err = c.AuthServer(context.Background(), s.URL+"/mcp", s.URL)
	assert.ErrorIs(t, err, discovery.ErrMismatch)
	assert.NotContains(t, s.requests(), "/.well-known/openid-configuration", "a document for another issuer ends the search")
}

func TestMetadataCache(t *testing.T) {
	s := newSite(t)
	s.json("/.well-known/oauth-protected-resource/mcp", `{"resource":"{url}/mcp"}`)
	s.json("/meta-v2", `{"resource":"{url}/mcp","authorization_servers":["{url}/v2"]}`)
	c := quick()
	closeIdle(t, c)
	ctx := context.Background()

	for range 3 {
		_, err := c.ProtectedResource(ctx, s.URL+"/mcp", s.URL+"/.well-known/oauth-protected-resource/mcp")
		require.NoError(t, err)
	}
	assert.Len(t, s.requests(), 1, "cached per URL")

	d, err := c.ProtectedResource(ctx, s.URL+"/mcp", s.URL+"/meta-v2")
	require.NoError(t, err)
	assert.Equal(t, []string{s.URL + "/v2"}, d.AuthorizationServers, "a new resource_metadata URL is fetched (RFC 9728 §5.2)")
	assert.Len(t, s.requests(), 2)

	nc := quick()
	nc.CacheTTL = -1
	closeIdle(t, nc)
	for range 2 {
		_, err := nc.ProtectedResource(ctx, s.URL+"/mcp", "")
		require.NoError(t, err)
	}
	assert.Len(t, s.requests(), 4, "no cache")
}

// FreshProtectedResource fetches anew, and what it fetched is what the
// cache holds afterwards.
func TestFreshProtectedResource(t *testing.T) {
	s := newSite(t)
	path := "/.well-known/oauth-protected-resource/mcp"
	s.json(path, `{"resource":"{url}/mcp","authorization_servers":["{url}/as1"]}`)
	c := quick()
	closeIdle(t, c)
	ctx := context.Background()
	d, err := c.ProtectedResource(ctx, s.URL+"/mcp", "")
	require.NoError(t, err)
	require.Equal(t, []string{s.URL + "/as1"}, d.AuthorizationServers)

	s.json(path, `{"resource":"{url}/mcp","authorization_servers":["{url}/as2"]}`)
	d, err = c.ProtectedResource(ctx, s.URL+"/mcp", "")
	require.NoError(t, err)
	assert.Equal(t, []string{s.URL + "/as1"}, d.AuthorizationServers, "from the cache")
	d, err = c.FreshProtectedResource(ctx, s.URL+"/mcp", "")
	require.NoError(t, err)
	assert.Equal(t, []string{s.URL + "/as2"}, d.AuthorizationServers, "fetched anew")
	d, err = c.ProtectedResource(ctx, s.URL+"/mcp", "")
	require.NoError(t, err)
	assert.Equal(t, []string{s.URL + "/as2"}, d.AuthorizationServers, "the cache holds the fresh copy")
	assert.Len(t, s.requests(), 2)
}

// A document found at an OpenID Connect Discovery location says so; one
// at the RFC 8414 location does not. The pushed authorization request
// members are kept.
func TestAuthServerOpenIDConfiguration(t *testing.T) {
	s := newSite(t)
	s.json("/op/.well-known/openid-configuration", `{"issuer":"{url}/op","authorization_endpoint":"{url}/op/auth","token_endpoint":"{url}/op/token",
		"pushed_authorization_request_endpoint":"{url}/op/par","require_pushed_authorization_requests":true}`)
	s.json("/.well-known/oauth-authorization-server/plain", `{"issuer":"{url}/plain","authorization_endpoint":"{url}/plain/auth","token_endpoint":"{url}/plain/token"}`)
	c := quick()
	closeIdle(t, c)
	for range 2 { // the second from the cache
		op, err := c.AuthServer(context.Background(), s.URL+"/mcp", s.URL+"/op")
		require.NoError(t, err)
		assert.True(t, op.OpenIDConfiguration)
		assert.Equal(t, s.URL+"/op/par", op.PushedAuthorizationRequestEndpoint)
		assert.True(t, op.RequirePushedAuthorizationRequests)
	}
	plain, err := c.AuthServer(context.Background(), s.URL+"/mcp", s.URL+"/plain")
	require.NoError(t, err)
	assert.False(t, plain.OpenIDConfiguration)
	assert.Empty(t, plain.PushedAuthorizationRequestEndpoint)

	_, err = discovery.ParseAuthServer([]byte(`{"issuer":"https://as.example","pushed_authorization_request_endpoint":"https://as.example/par#x"}`))
	assert.ErrorIs(t, err, discovery.ErrMalformed)
}

func TestMetadataBodyBounded(t *testing.T) {
	s := newSite(t)
	s.json("/.well-known/oauth-protected-resource", `{"resource":"{url}","resource_name":"`+strings.Repeat("x", 2000)+`"}`)
	c := quick()
	c.MaxBodySize = 1000
	closeIdle(t, c)

	_, err := c.ProtectedResource(context.Background(), s.URL, "")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "over 1000 bytes")
}

func TestMetadataMalformedEndsSearch(t *testing.T) {
	s := newSite(t)
	s.json("/.well-known/oauth-protected-resource/mcp", `{"resource":"{url}/mcp","scopes_supported":"mcp:basic"}`)
	c := quick()
	closeIdle(t, c)

	_, err := c.ProtectedResource(context.Background(), s.URL+"/mcp", "")
	assert.ErrorIs(t, err, discovery.ErrMalformed)
}

// Private and link-local targets are refused, before anything is sent.
func TestPrivateAndLinkLocalTargetsRefused(t *testing.T) {
	c := quick()
	closeIdle(t, c)
	ctx := context.Background()
	public := "https://mcp.example.com/mcp"
	for _, tc := range []struct {
		name string
		call func() error
	}{
		{"resource_metadata at the cloud metadata service", func() error {
			_, err := c.ProtectedResource(ctx, public, "http://169.254.169.254/latest/meta-data")
			return err
		}},
		{"resource_metadata at a private address", func() error {
			_, err := c.ProtectedResource(ctx, public, "https://10.0.0.7/.well-known/oauth-protected-resource")
			return err
		}},
		{"issuer at a private address", func() error {
			_, err := c.AuthServer(ctx, public, "https://192.168.1.1")
			return err
		}},
		{"issuer at link-local IPv6", func() error {
			_, err := c.AuthServer(ctx, public, "https://[fe80::1]")
			return err
		}},
		{"issuer on loopback for a public resource", func() error {
			_, err := c.AuthServer(ctx, public, "http://localhost:8080")
			return err
		}},
		{"issuer on 127.0.0.1 over https for a public resource", func() error {
			_, err := c.AuthServer(ctx, public, "https://127.0.0.1")
			return err
		}},
		{"plain http issuer", func() error {
			_, err := c.AuthServer(ctx, public, "http://as.example.com")
			return err
		}},
	} {
		assert.ErrorIs(t, tc.call(), discovery.ErrRefusedTarget, tc.name)
	}
}

// A name that resolves to a private or link-local address is refused when
// the connection is dialled: checking the URL alone would let DNS point
// anywhere.
func TestRefusedAtDialTime(t *testing.T) {
	s := newSite(t) // on 127.0.0.1, so that loopback targets are allowed
	_, port, err := net.SplitHostPort(s.Listener.Addr().String())
	require.NoError(t, err)
	dns := &fakeDNS{answers: map[string]netip.Addr{
		"internal.test.":    netip.MustParseAddr("10.1.2.3"),
		"metadata.test.":    netip.MustParseAddr("169.254.169.254"),
		"mapped.test.":      netip.MustParseAddr("::ffff:192.168.0.1"),
		"loopback.test.":    netip.MustParseAddr("127.0.0.1"),
		"unspecified.test.": netip.MustParseAddr("0.0.0.0"),
	}}
	c := quick()
	c.Resolver = dns.resolver()
	closeIdle(t, c)
	ctx := context.Background()

	for _, host := range []string{"internal.test", "metadata.test", "mapped.test", "unspecified.test"} {
		_, err := c.AuthServer(ctx, s.URL+"/mcp", "https://"+host+":"+port)
		assert.ErrorIs(t, err, discovery.ErrRefusedTarget, host)
	}
	assert.Empty(t, s.requests())

	// A name resolving to loopback is dialled for a resource on loopback:
	// the TLS handshake with the plain-HTTP server fails, past the guard.
	_, err = c.AuthServer(ctx, s.URL+"/mcp", "https://loopback.test:"+port)
	require.Error(t, err)
	assert.NotErrorIs(t, err, discovery.ErrRefusedTarget)
	assert.Positive(t, dns.queries(), "names were resolved by the Client's resolver")

	// For a public resource, loopback is refused after resolution too.
	_, err = c.AuthServer(ctx, "https://mcp.example.com/mcp", "https://loopback.test:"+port)
	assert.ErrorIs(t, err, discovery.ErrRefusedTarget)
}

// Every redirect hop is held to the policy.
func TestRedirectToRefusedTarget(t *testing.T) {
	s := newSite(t)
	s.handle("/.well-known/oauth-protected-resource/mcp", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "http://169.254.169.254/latest/meta-data", http.StatusFound)
	})
	c := quick()
	closeIdle(t, c)

	_, err := c.ProtectedResource(context.Background(), s.URL+"/mcp", "")
	assert.ErrorIs(t, err, discovery.ErrRefusedTarget)
	assert.Len(t, s.requests(), 1, "a refused target is not retried")
}

func TestHTTPClientsHoldPolicy(t *testing.T) {
	s := newSite(t)
	var tries int
	s.handle("/token", func(w http.ResponseWriter, r *http.Request) {
		if tries++; tries == 1 {
			http.Error(w, "hiccup", http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "ok")
	})
	c := quick()
	closeIdle(t, c)

	resp, err := c.RetryingHTTPClient(s.URL+"/mcp").Post(s.URL+"/token", "application/x-www-form-urlencoded", strings.NewReader("grant_type=x"))
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, 2, tries, "retried after a 503")

	resp, err = c.HTTPClient(s.URL + "/mcp").Get(s.URL + "/token")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, 3, tries)

	_, err = c.HTTPClient("https://mcp.example.com/mcp").Get(s.URL + "/token")
	assert.ErrorIs(t, err, discovery.ErrRefusedTarget, "loopback is for loopback resources only")
	_, err = c.RetryingHTTPClient("https://mcp.example.com/mcp").Get("https://169.254.169.254/")
	assert.ErrorIs(t, err, discovery.ErrRefusedTarget)
	assert.Equal(t, 3, tries)
}

func TestCancelledContext(t *testing.T) {
	s := newSite(t)
	c := quick()
	closeIdle(t, c)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := c.ProtectedResource(ctx, s.URL+"/mcp", "")
	assert.ErrorIs(t, err, context.Canceled)
}

// fakeDNS answers A and AAAA queries from a table, over the stream
// connections a Go resolver opens through its Dial function: no packet
// leaves the process.
type fakeDNS struct {
	answers map[string]netip.Addr
	mu      sync.Mutex
	n       int
}

func (d *fakeDNS) queries() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.n
}

func (d *fakeDNS) resolver() *net.Resolver {
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, address string) (net.Conn, error) {
		client, server := net.Pipe()
		go d.serve(server)
		return client, nil
	}}
}

// serve answers the length-prefixed DNS messages (RFC 1035 §4.2.2) on c.
func (d *fakeDNS) serve(c net.Conn) {
	defer c.Close()
	for {
		var n uint16
		if err := binary.Read(c, binary.BigEndian, &n); err != nil {
			return
		}
		q := make([]byte, n)
		if _, err := io.ReadFull(c, q); err != nil {
			return
		}
		resp, err := d.answer(q)
		if err != nil {
			return
		}
		out := binary.BigEndian.AppendUint16(nil, uint16(len(resp)))
		if _, err := c.Write(append(out, resp...)); err != nil {
			return
		}
	}
}

// answer builds the response to query q (RFC 1035 §4.1).
func (d *fakeDNS) answer(q []byte) ([]byte, error) {
	if len(q) < 12 {
		return nil, errors.New("short")
	}
	// The question: labels, then QTYPE and QCLASS.
	i, name := 12, ""
	for {
		if i >= len(q) {
			return nil, errors.New("bad name")
		}
		l := int(q[i])
		i++
		if l == 0 {
			break
		}
		if i+l > len(q) {
			return nil, errors.New("bad label")
		}
		name += strings.ToLower(string(q[i:i+l])) + "."
		i += l
	}
	if i+4 > len(q) {
		return nil, errors.New("no type")
	}
	qtype := binary.BigEndian.Uint16(q[i:])
	question := q[12 : i+4]
	d.mu.Lock()
	d.n++
	d.mu.Unlock()

	a, ok := d.answers[name]
	var rdata []byte
	switch {
	case ok && qtype == 1 && a.Is4():
		b := a.As4()
		rdata = b[:]
	case ok && qtype == 28 && a.Is6():
		b := a.As16()
		rdata = b[:]
	}
	flags := uint16(0x8180) // response, recursion desired and available
	if !ok {
		flags |= 3 // NXDOMAIN
	}
	msg := binary.BigEndian.AppendUint16(nil, binary.BigEndian.Uint16(q)) // ID
	msg = binary.BigEndian.AppendUint16(msg, flags)
	msg = binary.BigEndian.AppendUint16(msg, 1) // QDCOUNT
	ancount := uint16(0)
	if rdata != nil {
		ancount = 1
	}
	msg = binary.BigEndian.AppendUint16(msg, ancount)
	msg = append(msg, 0, 0, 0, 0) // NSCOUNT, ARCOUNT
	msg = append(msg, question...)
	if rdata != nil {
		msg = append(msg, 0xc0, 12) // the name: a pointer to the question's
		msg = binary.BigEndian.AppendUint16(msg, qtype)
		msg = binary.BigEndian.AppendUint16(msg, 1)  // IN
		msg = binary.BigEndian.AppendUint32(msg, 60) // TTL
		msg = binary.BigEndian.AppendUint16(msg, uint16(len(rdata)))
		msg = append(msg, rdata...)
	}
	return msg, nil
}

// A server that never finishes its answer does not hold the caller past
// the Client's Timeout.
func TestTimeoutBoundsEachRequest(t *testing.T) {
	s := newSite(t)
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	s.handle("/.well-known/oauth-authorization-server", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"issuer":`)
		w.(http.Flusher).Flush()
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	c := quick()
	c.Timeout, c.RetryMax = 50*time.Millisecond, -1
	closeIdle(t, c)
	_, err := c.AuthServer(context.Background(), s.URL, s.URL)
	require.Error(t, err)
	var ne net.Error
	assert.True(t, errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout(), "a timeout: %v", err)
}
