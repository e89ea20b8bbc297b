package parse

import (
	"net/http"
	"strings"

	ctdauth "github.com/containerd/containerd/v2/core/remotes/docker/auth"
	distchallenge "github.com/docker/distribution/registry/client/auth/challenge"
	"github.com/modelcontextprotocol/go-sdk/oauthex"
	"github.com/stepup-go/stepup"
)

// library parses a header with one library and reduces the result to
// challenges. A non-nil error means the library returned no challenges.
type library struct {
	name  string
	parse func(status int, h http.Header) ([]challenge, error)
}

// libraries in the order of the tables.
var libraries = []library{
	{"stepup", parseStepup},
	{"distribution", parseDistribution},
	{"containerd", parseContainerd},
	{"gosdk", parseGoSDK},
}

func parseStepup(_ int, h http.Header) ([]challenge, error) {
	cs, err := stepup.ParseChallenges(h)
	if err != nil {
		// Over a limit: stepup tells its callers to act on none.
		return nil, err
	}
	out := make([]challenge, 0, len(cs))
	for i := range cs {
		c := &cs[i]
		usable := c.Err == nil
		if c.IsScheme("Bearer") || c.IsScheme("DPoP") {
			// The Transport acts on the typed view, which also rejects
			// values outside RFC 6750's character sets.
			_, err := c.OAuth()
			usable = err == nil
		}
		params := make(map[string]string, len(c.Params))
		for _, p := range c.Params {
			params[strings.ToLower(p.Name)] = p.Value
		}
		out = append(out, challenge{scheme: strings.ToLower(c.Scheme), token68: c.Token68, params: params, usable: usable})
	}
	return out, nil
}

func parseDistribution(status int, h http.Header) ([]challenge, error) {
	cs := distchallenge.ResponseChallenges(&http.Response{StatusCode: status, Header: h})
	out := make([]challenge, 0, len(cs))
	for _, c := range cs {
		// Scheme and parameter names come back lower-cased.
		out = append(out, challenge{scheme: c.Scheme, params: c.Parameters, usable: true})
	}
	return out, nil
}

// containerdSchemes names the only schemes ParseAuthHeader keeps; it drops
// every other challenge.
var containerdSchemes = map[ctdauth.AuthenticationScheme]string{
	ctdauth.BasicAuth:  "basic",
	ctdauth.DigestAuth: "digest",
	ctdauth.BearerAuth: "bearer",
}

func parseContainerd(_ int, h http.Header) ([]challenge, error) {
	cs := ctdauth.ParseAuthHeader(h)
	out := make([]challenge, 0, len(cs))
	for _, c := range cs {
		out = append(out, challenge{scheme: containerdSchemes[c.Scheme], params: c.Parameters, usable: true})
	}
	return out, nil
}

func parseGoSDK(_ int, h http.Header) ([]challenge, error) {
	cs, err := oauthex.ParseWWWAuthenticate(h.Values("WWW-Authenticate"))
	if err != nil {
		// One malformed challenge fails the whole header: none is returned.
		return nil, err
	}
	out := make([]challenge, 0, len(cs))
	for _, c := range cs {
		out = append(out, challenge{scheme: c.Scheme, params: c.Params, usable: true})
	}
	return out, nil
}
