package discovery

import (
	"net/http"

	"github.com/stepup-go/stepup/internal/netguard"
)

// ErrRefusedTarget says that a request was not sent because its URL, or
// the address its host resolved to, is one the policy keeps requests from:
// plain http to a host other than loopback, a link-local, private or
// loopback address that is not allowed, or an address no request should go
// to (unspecified, multicast, broadcast, reserved). RFC 9728 §7.7 and the
// MCP security best practices ask clients to take such precautions against
// server-side request forgery: the URLs come from documents and challenges
// of servers the user may not trust.
var ErrRefusedTarget = netguard.ErrRefused

// guardedTransport checks every request, each redirect included, against
// the policy before base sends it.
type guardedTransport struct {
	base http.RoundTripper
	p    netguard.Policy
}

func (t *guardedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if err := t.p.CheckURL(req.URL); err != nil {
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, err
	}
	return t.base.RoundTrip(req)
}
