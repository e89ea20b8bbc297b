package grants

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"

	"github.com/stepup-go/stepup"
	"github.com/stepup-go/stepup/discovery"
)

// Workload is a [stepup.Escalator] for a workload that proves who it is
// with a token its platform issued it (a Kubernetes service account
// token, a CI job's OpenID Connect token, a SPIFFE JWT-SVID), which the
// resource's authorization server trusts: it presents that token with the
// JWT bearer grant (RFC 7523 §2.1), as workload identity federation does.
//
// Each escalation reads the token again, since platforms rotate them, and
// presents it once. A refusal is final for the request: there is no
// fallback to another grant, and no second attempt with the same token.
// invalid_scope and unauthorized_client wrap [stepup.ErrDeclined], which
// the guard remembers; invalid_grant (an expired token, or one for
// another audience) does not, so that a later request, with the token
// rotated, may succeed. Expiry of the access token and step-up (a 403
// insufficient_scope, for the requested ∪ granted ∪ challenged scopes)
// both present the workload's current token again; challenges for a user
// authentication or claims are declined at once.
type Workload struct {
	// Token returns the workload's current token, a JWT whose audience is
	// the authorization server (RFC 7523 §3). Required. See [TokenFile]
	// and [TokenEnv].
	Token func(ctx context.Context) (string, error)

	// Client, when set, authenticates the client as well (RFC 7523
	// §3.1); [PublicClient] sends its client_id alone. Nil sends no
	// client authentication: the token is the credential.
	Client ClientAuth

	// Discovery fetches the metadata and sends the token requests under
	// its policy. Nil means a [discovery.Client] with its defaults.
	Discovery *discovery.Client

	// AuthorizationServer, when set, is the issuer to use among those the
	// resource lists; others are not used.
	AuthorizationServer string

	// EndpointParams are added to every token request, as with
	// [golang.org/x/oauth2/clientcredentials.Config]: audience, say, for
	// servers that bind tokens to an audience parameter rather than to
	// the RFC 8707 resource, which is sent as well. A parameter the grant
	// sets cannot be overridden.
	EndpointParams url.Values

	d discoverer
}

// Escalate presents the workload's token for req; see [Workload].
func (w *Workload) Escalate(ctx context.Context, req *stepup.EscalationRequest) (*stepup.Grant, error) {
	if w.Token == nil {
		return nil, errors.New("grants: Workload needs a Token func")
	}
	if err := noPerson(req); err != nil {
		return nil, err
	}
	disc := w.d.client(w.Discovery)
	t, err := discover(ctx, disc, req, w.AuthorizationServer, GrantJWTBearer)
	if err != nil {
		return nil, err
	}
	assertion, err := subjectToken(ctx, w.Token, "the workload's token")
	if err != nil {
		return nil, err
	}
	return redeemAssertion(ctx, tokenClient(disc, t.prm.Resource, req.DPoP), t, assertion, t.scopes(req), w.Client, w.EndpointParams, req.DPoP)
}

// subjectToken calls get and checks that it returned a token.
func subjectToken(ctx context.Context, get func(context.Context) (string, error), what string) (string, error) {
	tok, err := get(ctx)
	if err != nil {
		return "", fmt.Errorf("grants: %s: %w", what, err)
	}
	if tok = strings.TrimSpace(tok); tok == "" {
		return "", fmt.Errorf("%w: %s is empty", ErrNoSubjectToken, what)
	}
	return tok, nil
}

// TokenFile returns a [Workload.Token] that reads the token from the file
// at path on every call, as platforms that rotate it expect (a projected
// Kubernetes service account token, say).
func TokenFile(path string) func(context.Context) (string, error) {
	return func(context.Context) (string, error) {
		b, err := os.ReadFile(path)
		if err != nil {
			return "", err // the *PathError names the file, not its content
		}
		return string(b), nil
	}
}

// TokenEnv returns a [Workload.Token] that reads the token from the
// environment variable name on every call.
func TokenEnv(name string) func(context.Context) (string, error) {
	return func(context.Context) (string, error) {
		v, ok := os.LookupEnv(name)
		if !ok {
			return "", fmt.Errorf("%w: $%s is not set", ErrNoSubjectToken, name)
		}
		return v, nil
	}
}
