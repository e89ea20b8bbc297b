package dpop

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
)

// Scheme is the authentication scheme of DPoP-bound tokens (RFC 9449
// §7.1), and their token_type (RFC 9449 §5).
const Scheme = "DPoP"

// ErrorUseNonce is the error code of a server that wants a nonce in the
// proof (RFC 9449 §8, §9).
const ErrorUseNonce = "use_dpop_nonce"

// maxErrorBody bounds the token endpoint error body read to find its error
// code: real ones are a few hundred bytes.
const maxErrorBody = 16 << 10

// Config is what a client needs to send DPoP proofs: its key and the
// nonces the servers gave. One Config serves every server a grant talks
// to; a Config is safe for concurrent use.
type Config struct {
	// Key signs the proofs. It is required.
	Key *Key
	// Nonces keeps each server's nonce. Nil keeps none: a server that
	// demands one is answered only by the retry of the request it
	// rejected.
	Nonces *Nonces
}

// NewConfig returns a Config for k with an empty nonce cache.
func NewConfig(k *Key) *Config { return &Config{Key: k, Nonces: new(Nonces)} }

func (c *Config) nonce(req *http.Request) string {
	if c.Nonces == nil {
		return ""
	}
	return c.Nonces.Get(req.URL)
}

func (c *Config) observe(req *http.Request, h http.Header) {
	if c.Nonces != nil {
		c.Nonces.Observe(req.URL, h)
	}
}

// Client returns a client whose requests go through a [Transport] over
// base's transport; nil base means [http.DefaultClient]. It is meant for
// token endpoints: as x/oauth2 does, pass it under [oauth2.HTTPClient].
//
// [oauth2.HTTPClient]: https://pkg.go.dev/golang.org/x/oauth2#HTTPClient
func (c *Config) Client(base *http.Client) *http.Client {
	if base == nil {
		base = http.DefaultClient
	}
	cp := *base
	cp.Transport = &Transport{Base: base.Transport, Config: c}
	return &cp
}

type ctxKey struct{}

// NewContext returns ctx carrying c, for code that makes token requests
// on behalf of a grant bound to c's key (a refresh).
func NewContext(ctx context.Context, c *Config) context.Context {
	return context.WithValue(ctx, ctxKey{}, c)
}

// FromContext returns the Config of ctx, or nil.
func FromContext(ctx context.Context) *Config {
	c, _ := ctx.Value(ctxKey{}).(*Config)
	return c
}

// Transport is an [http.RoundTripper] for token endpoints (RFC 9449 §5):
// it sends each request with a fresh proof of the request's method and
// URI, carrying the server's nonce when it gave one; keeps the nonce of
// every response's DPoP-Nonce field; and sends a request again, once, with
// the new nonce when the server answers 400 use_dpop_nonce (RFC 9449 §8).
// A request whose body cannot be had again (no GetBody) is not sent again.
//
// Transport never modifies the caller's request.
type Transport struct {
	// Base makes the requests. Nil means [http.DefaultTransport].
	Base http.RoundTripper
	// Config holds the key and the nonces. It is required.
	Config *Config
}

var errNoConfig = errors.New("dpop: Transport.Config or its Key is nil")

// RoundTrip sends req with a DPoP proof, as described on [Transport].
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if t.Config == nil || t.Config.Key == nil {
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, errNoConfig
	}
	nonce := t.Config.nonce(req)
	resp, err := t.send(req, req.Body, nonce)
	if err != nil {
		return nil, err
	}
	t.Config.observe(req, resp.Header)
	fresh, ok := nonceDemanded(resp)
	if !ok || fresh == nonce {
		return resp, nil // the same nonce again: no second retry (RFC 9449 §8)
	}
	body := req.Body
	if req.Body != nil && req.Body != http.NoBody {
		if req.GetBody == nil {
			return resp, nil
		}
		if body, err = req.GetBody(); err != nil {
			return resp, nil
		}
	}
	resp.Body.Close()
	if resp, err = t.send(req, body, fresh); err != nil {
		return nil, err
	}
	t.Config.observe(req, resp.Header)
	return resp, nil
}

// send sends a copy of req with body and a proof carrying nonce.
func (t *Transport) send(req *http.Request, body io.ReadCloser, nonce string) (*http.Response, error) {
	proof, err := t.Config.Key.Proof(req.Method, HTU(req.URL), "", nonce)
	if err != nil {
		if body != nil {
			body.Close()
		}
		return nil, err
	}
	r2 := req.Clone(req.Context())
	r2.Body = body
	r2.Header.Set("DPoP", proof)
	base := t.Base
	if base == nil {
		base = http.DefaultTransport
	}
	return base.RoundTrip(r2)
}

// CloseIdleConnections closes the idle connections of Base, if it can.
func (t *Transport) CloseIdleConnections() {
	if c, ok := t.Base.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

// nonceDemanded returns the nonce of a token endpoint's 400
// use_dpop_nonce answer (RFC 9449 §8), leaving resp's body readable from
// its start. It returns false for any other response.
func nonceDemanded(resp *http.Response) (string, bool) {
	if resp.StatusCode != http.StatusBadRequest {
		return "", false
	}
	nonce, ok := HeaderNonce(resp.Header)
	if !ok || resp.Body == nil {
		return "", false
	}
	head, err := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	resp.Body = &rereadBody{Reader: io.MultiReader(bytes.NewReader(head), resp.Body), Closer: resp.Body}
	if err != nil {
		return "", false
	}
	var e struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(head, &e) != nil || e.Error != ErrorUseNonce {
		return "", false
	}
	return nonce, true
}

type rereadBody struct {
	io.Reader
	io.Closer
}
