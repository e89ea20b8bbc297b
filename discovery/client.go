package discovery

import (
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-retryablehttp"
	"github.com/stepup-go/stepup/internal/httpretry"
	"github.com/stepup-go/stepup/internal/netguard"
	"github.com/stepup-go/stepup/internal/weborigin"
)

// Defaults of a [Client]'s zero fields.
const (
	// DefaultMaxBodySize bounds a metadata document: real ones are a few
	// kilobytes.
	DefaultMaxBodySize = 256 << 10
	// DefaultRetryMax is how many times a metadata request is retried
	// after a network error or a 5xx answer.
	DefaultRetryMax = 3
	// DefaultRetryWaitMin and DefaultRetryWaitMax bound the exponential
	// backoff between tries, a Retry-After header included.
	DefaultRetryWaitMin = 100 * time.Millisecond
	DefaultRetryWaitMax = time.Second
	// DefaultCacheTTL is how long a fetched document is used before it is
	// fetched again.
	DefaultCacheTTL = 10 * time.Minute
	// DefaultTimeout bounds each request, its body included: a server
	// that dribbles its answer must not hold an escalation forever.
	DefaultTimeout = 30 * time.Second
)

// ErrNotFound says that no metadata document was found at any of the
// locations tried: each answered with a 4xx status or with something that
// is not JSON.
var ErrNotFound = errors.New("discovery: no metadata document found")

// ErrMismatch says that a metadata document names another resource or
// issuer than the one it was fetched for; RFC 9728 §3.3 and RFC 8414 §3.3
// forbid using it.
var ErrMismatch = errors.New("discovery: metadata names another resource or issuer")

// StatusError is the answer to a metadata request that was not 200 OK.
type StatusError struct {
	URL        string // the document's URL
	StatusCode int    // the answer's status
}

// Error says which URL answered which status.
func (e *StatusError) Error() string {
	return fmt.Sprintf("discovery: GET %s: %d %s", e.URL, e.StatusCode, http.StatusText(e.StatusCode))
}

// Client fetches metadata documents, checks them and caches them, and
// hands out the [*http.Client]s for the other requests made on behalf of
// a protected resource, under one policy (see the package documentation).
//
// Loopback targets are allowed only for a resource that is itself on
// loopback (a name under localhost or a loopback address): a server on
// the internet must not make a client call the services of the machine it
// runs on. Private and link-local addresses are refused unless allowed.
//
// The zero value is ready to use. A Client is safe for concurrent use;
// set its fields before first use and do not change them afterwards.
type Client struct {
	// Transport sends the requests. Nil means a transport of the
	// Client's own: [http.DefaultTransport]'s settings without proxy,
	// whose dialer refuses the addresses the policy refuses, whatever
	// name resolved to them. A Transport of yours gets only requests
	// whose URL passed the policy; the addresses names resolve to are
	// then yours to check.
	Transport http.RoundTripper

	// Resolver resolves names for the Client's own transport; nil means
	// [net.DefaultResolver].
	Resolver *net.Resolver

	// AllowPrivate lets requests reach private addresses (RFC 1918,
	// RFC 4193, RFC 6598 shared address space), as when the resource and
	// its authorization server run on an internal network.
	AllowPrivate bool

	// AllowLinkLocal lets requests reach link-local addresses
	// (169.254.0.0/16, fe80::/10), where cloud metadata services listen.
	AllowLinkLocal bool

	// MaxBodySize bounds the documents read; 0 means DefaultMaxBodySize.
	MaxBodySize int64

	// RetryMax is how many times a metadata request is retried after a
	// network error or a 5xx answer; 0 means DefaultRetryMax, a negative
	// value no retries. A 4xx answer is never retried.
	RetryMax int

	// RetryWaitMin and RetryWaitMax bound the backoff between tries; 0
	// means DefaultRetryWaitMin and DefaultRetryWaitMax.
	RetryWaitMin, RetryWaitMax time.Duration

	// Timeout bounds each request and the reading of its answer, each try
	// on its own; 0 means DefaultTimeout, a negative value none.
	Timeout time.Duration

	// CacheTTL is how long a document is used before it is fetched again;
	// 0 means DefaultCacheTTL, a negative value no caching. A challenge
	// that names a new resource_metadata URL is a new URL, fetched at once
	// (RFC 9728 §5.2).
	CacheTTL time.Duration

	init       sync.Once
	transports [2]http.RoundTripper // by Policy.Loopback

	mu    sync.Mutex
	cache map[cacheKey]cacheEntry
}

type cacheKey struct {
	url      string
	loopback bool
}

type cacheEntry struct {
	doc any // *ProtectedResource or *AuthServer
	at  time.Time
}

// policyFor returns the policy for requests on behalf of resource.
func (c *Client) policyFor(resource *url.URL) netguard.Policy {
	return netguard.Policy{
		Loopback:  netguard.IsLoopbackHost(resource.Hostname()),
		Private:   c.AllowPrivate,
		LinkLocal: c.AllowLinkLocal,
	}
}

// transport returns the guarded base transport for p.
func (c *Client) transport(p netguard.Policy) http.RoundTripper {
	c.init.Do(func() {
		for i := range c.transports {
			base := c.Transport
			if base == nil {
				q := netguard.Policy{Loopback: i == 1, Private: c.AllowPrivate, LinkLocal: c.AllowLinkLocal}
				d := &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second, Resolver: c.Resolver, Control: q.Control}
				t := http.DefaultTransport.(*http.Transport).Clone()
				t.Proxy = nil // a proxy would be what the dialer checks
				t.DialContext = d.DialContext
				base = t
			}
			c.transports[i] = base
		}
	})
	i := 0
	if p.Loopback {
		i = 1
	}
	return &guardedTransport{base: c.transports[i], p: p}
}

// CloseIdleConnections closes the idle connections of the Client's
// transports, as [http.Client.CloseIdleConnections] does.
func (c *Client) CloseIdleConnections() {
	c.transport(netguard.Policy{}) // so that the transports exist
	for _, t := range c.transports {
		if ci, ok := t.(interface{ CloseIdleConnections() }); ok {
			ci.CloseIdleConnections()
		}
	}
}

// HTTPClient returns a client for requests made on behalf of the
// protected resource identified by resource, such as client registration
// (RFC 7591) or token refresh through stepup.RefreshWithConfig, which
// retries by itself: every request, each redirect included, is held to
// the Client's policy; none is retried. An unparsable resource gets the
// strictest policy.
func (c *Client) HTTPClient(resource string) *http.Client {
	u, err := url.Parse(resource)
	if err != nil {
		u = &url.URL{}
	}
	return c.client(c.policyFor(u))
}

// client returns an http.Client held to p.
func (c *Client) client(p netguard.Policy) *http.Client {
	timeout := c.Timeout
	switch {
	case timeout == 0:
		timeout = DefaultTimeout
	case timeout < 0:
		timeout = 0
	}
	return &http.Client{Transport: c.transport(p), Timeout: timeout}
}

// RetryingHTTPClient is [Client.HTTPClient] through go-retryablehttp, for
// token requests that present what a server accepts once: an
// authorization code (RFC 6749 §4.1.3), an assertion with a jti (RFC 7523
// §3). Such a request is tried again, up to RetryMax times with
// exponential backoff, only when the server cannot have acted on it (the
// connection was never made, or it answered 429 or 503). After any other
// failure it may have been served, and a second redemption of a code
// would be refused and taken for an attack (RFC 6749 §4.1.2, §10.5). The
// last answer is returned as it is.
func (c *Client) RetryingHTTPClient(resource string) *http.Client {
	return c.Retrying(c.HTTPClient(resource))
}

// Retrying is hc through go-retryablehttp, with the retry policy of
// [Client.RetryingHTTPClient]: each try goes through hc anew, so that a
// client that signs each request (a DPoP proof, RFC 9449 §4) signs each
// try.
func (c *Client) Retrying(hc *http.Client) *http.Client {
	return &http.Client{Transport: &retryablehttp.RoundTripper{Client: c.retrying(hc, httpretry.TokenPolicy(httpretry.Code))}}
}

func (c *Client) retrying(hc *http.Client, check retryablehttp.CheckRetry) *retryablehttp.Client {
	retryMax := c.RetryMax
	switch {
	case retryMax == 0:
		retryMax = DefaultRetryMax
	case retryMax < 0:
		retryMax = 0
	}
	lo, hi := c.RetryWaitMin, c.RetryWaitMax
	if lo <= 0 {
		lo = DefaultRetryWaitMin
	}
	if hi <= 0 {
		hi = DefaultRetryWaitMax
	}
	return httpretry.New(hc, check, retryMax, lo, hi)
}

// metadataPolicy retries network errors and 5xx answers but 501 of the GET
// of a metadata document, which is safe to send again; never a 4xx answer
// (not even 429: a metadata request that was refused will be refused
// again), nor a refused target, nor after ctx ended.
func metadataPolicy(ctx context.Context, resp *http.Response, err error) (bool, error) {
	if ctx.Err() != nil {
		return false, ctx.Err()
	}
	if err != nil {
		if errors.Is(err, ErrRefusedTarget) {
			return false, err
		}
		// retryablehttp's policy knows the errors that will not pass:
		// too many redirects, a bad scheme, a certificate not trusted.
		return retryablehttp.DefaultRetryPolicy(ctx, resp, err)
	}
	return resp.StatusCode >= 500 && resp.StatusCode != http.StatusNotImplemented, nil
}

// ProtectedResource returns the metadata of the protected resource
// identified by resource (RFC 9728), an absolute http(s) URL.
//
// With metadataURL, the resource_metadata URL of a challenge (RFC 9728
// §5.1) that the caller has validated, the document found there is used if
// it names the resource's origin and a path equal to or above the
// resource's: RFC 9728 §3.3 asks for the URL the request went to, and the
// MCP SDKs accept a document for the resource's origin or a path above it,
// and send its resource as the RFC 8707 resource. Without metadataURL, or
// when nothing is found there, the locations of
// [ProtectedResourceLocations] are tried in order, each document required
// to name exactly the identifier its URL was built from (RFC 9728 §3.3).
//
// Only a 4xx answer, or one that is not JSON, moves on to the next
// location; any other failure, and a document naming another resource
// ([ErrMismatch]), ends the search with an error. [ErrNotFound] says that
// no location had a document.
func (c *Client) ProtectedResource(ctx context.Context, resource, metadataURL string) (*ProtectedResource, error) {
	return c.findProtectedResource(ctx, resource, metadataURL, false)
}

// FreshProtectedResource is [Client.ProtectedResource] with every document
// fetched anew rather than taken from the cache, and cached afterwards.
// The resource's metadata names its authorization servers: a client about
// to ask a person to authorize uses it to go where the resource sends it
// now, not where it sent it when the cached copy was fetched (a resource
// may move to another authorization server at any time).
func (c *Client) FreshProtectedResource(ctx context.Context, resource, metadataURL string) (*ProtectedResource, error) {
	return c.findProtectedResource(ctx, resource, metadataURL, true)
}

func (c *Client) findProtectedResource(ctx context.Context, resource, metadataURL string, fresh bool) (*ProtectedResource, error) {
	ru, err := parseHTTPURL(resource)
	if err != nil {
		return nil, fmt.Errorf("discovery: resource %q: %w", resource, err)
	}
	p := c.policyFor(ru)
	var errs []error
	if metadataURL != "" {
		d, err := c.protectedResource(ctx, p, metadataURL, fresh)
		if err == nil {
			if !covers(d.Resource, ru) {
				return nil, fmt.Errorf("%w: %s names resource %q, which is not %s or above it (RFC 9728 §3.3)",
					ErrMismatch, metadataURL, d.Resource, resource)
			}
			return d, nil
		}
		if !absent(err) {
			return nil, err
		}
		errs = append(errs, err)
	}
	locs, _ := ProtectedResourceLocations(resource) // resource parsed above
	for _, l := range locs {
		if l.URL == metadataURL {
			continue // tried
		}
		d, err := c.protectedResource(ctx, p, l.URL, fresh)
		if absent(err) {
			errs = append(errs, err)
			continue
		}
		if err != nil {
			return nil, err
		}
		if !namesIdentifier(d.Resource, l) {
			return nil, fmt.Errorf("%w: %s names resource %q, not %q (RFC 9728 §3.3)", ErrMismatch, l.URL, d.Resource, l.Identifier)
		}
		return d, nil
	}
	return nil, fmt.Errorf("%w for resource %s: %w", ErrNotFound, resource, errors.Join(errs...))
}

// AuthServer returns the metadata of the authorization server identified
// by issuer, for requests on behalf of the protected resource identified
// by resource, which decides the policy. It tries the locations of
// [AuthServerLocations] in order; the document found must name exactly
// issuer (RFC 8414 §3.3), else the search ends with [ErrMismatch]. As with
// [Client.ProtectedResource], only a 4xx answer or one that is not JSON
// moves on to the next location.
func (c *Client) AuthServer(ctx context.Context, resource, issuer string) (*AuthServer, error) {
	ru, err := parseHTTPURL(resource)
	if err != nil {
		return nil, fmt.Errorf("discovery: resource %q: %w", resource, err)
	}
	locs, err := AuthServerLocations(issuer)
	if err != nil {
		return nil, err
	}
	p := c.policyFor(ru)
	var errs []error
	for _, l := range locs {
		d, err := c.authServer(ctx, p, l.URL)
		if absent(err) {
			errs = append(errs, err)
			continue
		}
		if err != nil {
			return nil, err
		}
		if d.Issuer != issuer {
			return nil, fmt.Errorf("%w: %s names issuer %q, not %q (RFC 8414 §3.3)", ErrMismatch, l.URL, d.Issuer, issuer)
		}
		if strings.Contains(l.URL, OpenIDConfigurationSuffix) {
			op := *d // the cached document is shared
			op.OpenIDConfiguration = true
			return &op, nil
		}
		return d, nil
	}
	return nil, fmt.Errorf("%w for issuer %s: %w", ErrNotFound, issuer, errors.Join(errs...))
}

// namesIdentifier reports whether resource, a document's, is the
// identifier l was built from. An origin may be written with or without
// the slash of an empty path: both build the same URL (RFC 9728 §3.1).
func namesIdentifier(resource string, l Location) bool {
	if resource == l.Identifier {
		return true
	}
	u, err := url.Parse(l.Identifier)
	if err != nil || u.Path != "" && u.Path != "/" || u.RawQuery != "" || u.ForceQuery {
		return false
	}
	return strings.TrimSuffix(resource, "/") == strings.TrimSuffix(l.Identifier, "/")
}

// covers reports whether resource, the resource of a document named by a
// challenge, is resource identifier r or above it: the same origin and a
// path of which r's path is the same or a sub-path, segment-wise. A
// document with a query names exactly one resource.
func covers(resource string, r *url.URL) bool {
	if resource == r.String() {
		return true
	}
	d, err := parseHTTPURL(resource)
	if err != nil || !weborigin.Same(d, r) || d.RawQuery != "" || d.ForceQuery {
		return false
	}
	dp := d.EscapedPath()
	if !strings.HasSuffix(dp, "/") {
		dp += "/"
	}
	rp := r.EscapedPath()
	if !strings.HasSuffix(rp, "/") {
		rp += "/"
	}
	return strings.HasPrefix(rp, dp)
}

// absent reports whether err says that there is no document at a
// location, rather than that fetching it failed.
func absent(err error) bool {
	var se *StatusError
	return errors.As(err, &se) && se.StatusCode >= 400 && se.StatusCode < 500 || errors.Is(err, errNotJSON)
}

var errNotJSON = errors.New("discovery: answer is not JSON")

func (c *Client) protectedResource(ctx context.Context, p netguard.Policy, u string, fresh bool) (*ProtectedResource, error) {
	d, err := c.document(ctx, p, u, fresh, func(b []byte) (any, error) { return ParseProtectedResource(b) })
	if err != nil {
		return nil, err
	}
	return d.(*ProtectedResource), nil
}

func (c *Client) authServer(ctx context.Context, p netguard.Policy, u string) (*AuthServer, error) {
	d, err := c.document(ctx, p, u, false, func(b []byte) (any, error) { return ParseAuthServer(b) })
	if err != nil {
		return nil, err
	}
	return d.(*AuthServer), nil
}

// document returns the document at u, from the cache unless fresh, or
// fetched and parsed by parse. Failures are not cached.
func (c *Client) document(ctx context.Context, p netguard.Policy, u string, fresh bool, parse func([]byte) (any, error)) (any, error) {
	key := cacheKey{url: u, loopback: p.Loopback}
	ttl := c.CacheTTL
	if ttl == 0 {
		ttl = DefaultCacheTTL
	}
	if ttl > 0 && !fresh {
		c.mu.Lock()
		e, ok := c.cache[key]
		c.mu.Unlock()
		if ok && time.Since(e.at) < ttl {
			return e.doc, nil
		}
	}
	body, err := c.fetch(ctx, p, u)
	if err != nil {
		return nil, err
	}
	d, err := parse(body)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", u, err)
	}
	if ttl > 0 {
		c.mu.Lock()
		if c.cache == nil {
			c.cache = make(map[cacheKey]cacheEntry)
		}
		c.cache[key] = cacheEntry{doc: d, at: time.Now()}
		c.mu.Unlock()
	}
	return d, nil
}

// fetch GETs u and returns its body, read up to MaxBodySize, if the
// answer is 200 OK with a JSON media type (RFC 9728 §3.2, RFC 8414 §3.2).
func (c *Client) fetch(ctx context.Context, p netguard.Policy, u string) ([]byte, error) {
	pu, err := url.Parse(u)
	if err != nil {
		return nil, fmt.Errorf("discovery: %q: %w", u, err)
	}
	if err := p.CheckURL(pu); err != nil {
		return nil, fmt.Errorf("GET %s: %w", u, err)
	}
	req, err := retryablehttp.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("discovery: %q: %w", u, err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := c.retrying(c.client(p), metadataPolicy).Do(req)
	if err != nil {
		return nil, fmt.Errorf("discovery: GET %s: %w", u, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		drain(resp.Body)
		return nil, &StatusError{URL: u, StatusCode: resp.StatusCode}
	}
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt != "application/json" && !strings.HasSuffix(mt, "+json") {
		drain(resp.Body)
		return nil, fmt.Errorf("%w: GET %s: Content-Type %q", errNotJSON, u, mt)
	}
	limit := c.MaxBodySize
	if limit <= 0 {
		limit = DefaultMaxBodySize
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, fmt.Errorf("discovery: GET %s: reading body: %w", u, err)
	}
	if int64(len(body)) > limit {
		return nil, fmt.Errorf("discovery: GET %s: document over %d bytes", u, limit)
	}
	return body, nil
}

// drain reads a little of an unwanted body so that the connection can be
// reused.
func drain(r io.Reader) { _, _ = io.Copy(io.Discard, io.LimitReader(r, 4<<10)) }
