package grants

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/stepup-go/stepup"
	"github.com/stepup-go/stepup/discovery"
)

// maxAuthServers bounds the authorization servers of a resource that are
// tried: a document listing thousands must not make thousands of requests.
const maxAuthServers = 4

// discoverer holds the [discovery.Client] of an Escalator: its own, or a
// default one made once.
type discoverer struct {
	once sync.Once
	disc *discovery.Client
}

func (d *discoverer) client(own *discovery.Client) *discovery.Client {
	d.once.Do(func() {
		d.disc = own
		if d.disc == nil {
			d.disc = &discovery.Client{}
		}
	})
	return d.disc
}

// target is where a grant is redeemed: the protected resource and the
// authorization server chosen for it.
type target struct {
	prm *discovery.ProtectedResource
	as  *discovery.AuthServer
}

// resourceOf returns the resource req is for: the source's, else the
// challenged request's URL without query.
func resourceOf(req *stepup.EscalationRequest) (string, error) {
	if req.Resource != "" {
		return req.Resource, nil
	}
	if req.Request != nil && req.Request.URL != nil {
		u := *req.Request.URL
		u.RawQuery, u.Fragment = "", ""
		return u.String(), nil
	}
	return "", errors.New("grants: the escalation request names no resource")
}

// discover finds the resource's metadata (RFC 9728) and the first of its
// authorization servers (RFC 8414) with a token endpoint: the issuer of
// the grant held first, so that a step-up stays where the grant is, and,
// when set, the issuer only. One whose grant_types_supported lists
// grantType is preferred; when none does, the first with a token endpoint
// is used all the same, and its token endpoint has the last word: servers
// leave out grants they serve (Ory Hydra v2 lists no JWT bearer grant).
func discover(ctx context.Context, disc *discovery.Client, req *stepup.EscalationRequest, only, grantType string) (*target, error) {
	resource, err := resourceOf(req)
	if err != nil {
		return nil, err
	}
	prm, err := disc.ProtectedResource(ctx, resource, req.ResourceMetadata)
	if err != nil {
		return nil, fmt.Errorf("grants: protected resource metadata: %w", err)
	}
	issuers := prm.AuthorizationServers
	if i := slices.Index(issuers, req.Issuer); i > 0 {
		issuers = slices.Concat([]string{req.Issuer}, issuers[:i], issuers[i+1:])
	}
	var errs []error
	var unlisted *discovery.AuthServer
	tried := 0
	for _, issuer := range issuers {
		if only != "" && issuer != only {
			continue
		}
		if tried++; tried > maxAuthServers {
			break
		}
		as, err := disc.AuthServer(ctx, resource, issuer)
		if err == nil && as.TokenEndpoint == "" {
			err = errors.New("grants: the authorization server metadata has no token_endpoint")
		}
		if err == nil {
			if lists(as, grantType) {
				return &target{prm: prm, as: as}, nil
			}
			if unlisted == nil {
				unlisted = as
			}
			continue
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		errs = append(errs, fmt.Errorf("%s: %w", issuer, err))
	}
	if unlisted != nil {
		return &target{prm: prm, as: unlisted}, nil
	}
	if len(errs) == 0 {
		if only != "" {
			return nil, fmt.Errorf("grants: the metadata of %s does not list authorization server %s", prm.Resource, only)
		}
		return nil, fmt.Errorf("grants: the metadata of %s names no authorization server", prm.Resource)
	}
	return nil, fmt.Errorf("grants: no usable authorization server: %w", errors.Join(errs...))
}

// lists reports whether as's grant_types_supported lists grantType, or
// lists nothing: silence is not taken for the RFC 8414 §2 default of
// authorization_code and implicit, since many servers that issue client
// credentials tokens do not list their grants.
func lists(as *discovery.AuthServer, grantType string) bool {
	return len(as.GrantTypesSupported) == 0 || slices.Contains(as.GrantTypesSupported, grantType)
}

// scopes returns the scope to request: the escalation's (requested ∪
// granted ∪ challenged), else the resource's scopes_supported (MCP
// authorization, "Scope Selection Strategy"), else none.
func (t *target) scopes(req *stepup.EscalationRequest) stepup.Scopes {
	if len(req.Scopes) > 0 {
		return req.Scopes
	}
	return stepup.Scopes(nil).Union(t.prm.ScopesSupported)
}

// noPerson refuses the challenges a machine cannot meet: a stronger or
// more recent user authentication (RFC 9470) and claims about a user. The
// refusal wraps [stepup.ErrDeclined], so that the guard does not ask again.
func noPerson(req *stepup.EscalationRequest) error {
	switch req.Reason {
	case stepup.ReasonUserAuthentication, stepup.ReasonClaims:
		return fmt.Errorf("grants: %w: the resource asks for %s, which no grant without a person can give", stepup.ErrDeclined, req.Reason)
	}
	return nil
}
