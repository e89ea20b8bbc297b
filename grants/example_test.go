package grants_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/stepup-go/stepup"
	"github.com/stepup-go/stepup/grants"
)

// exampleEnv stops an example's servers when it ends.
type exampleEnv struct{ cleanups []func() }

func (e *exampleEnv) Cleanup(f func())  { e.cleanups = append(e.cleanups, f) }
func (e *exampleEnv) Fatal(args ...any) { log.Fatal(args...) }
func (e *exampleEnv) close() {
	for i := len(e.cleanups) - 1; i >= 0; i-- {
		e.cleanups[i]()
	}
}

// show fetches url with hc and prints the outcome.
func show(hc *http.Client, url string) {
	resp, err := hc.Get(url)
	if err != nil {
		fmt.Println("error:", err)
		return
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	fmt.Println(resp.Status, string(b))
}

// A headless service with a client ID and secret: no token at the start,
// a token from the client credentials grant on the first 401, and a new
// one, for the union of the scopes, when a call needs one more (403
// insufficient_scope). No person is asked.
func ExampleClientCredentials() {
	e := &exampleEnv{}
	defer e.close()
	as := newAuthServer(e)
	register(as, &asClient{id: "reports-job", secret: "s3cret-from-the-vault", method: "client_secret_basic"})
	mcp := newResourceServer(e, as)
	mcp.needs = map[string]string{"/mcp/tools/list": "tools:read", "/mcp/tools/call": "tools:call"}

	ts, err := stepup.NewTokenSource(mcp.resource, nil, stepup.WithEscalator(&grants.ClientCredentials{
		Auth: grants.ClientSecret{ClientID: "reports-job", Secret: "s3cret-from-the-vault"},
	}))
	if err != nil {
		log.Fatal(err)
	}
	hc := &http.Client{Transport: &stepup.Transport{Source: ts}}
	show(hc, mcp.srv.URL+"/mcp/tools/list")
	show(hc, mcp.srv.URL+"/mcp/tools/call")
	for _, r := range as.TokenRequests() {
		fmt.Printf("token request: %s, %s, scope %q\n", r.Form.Get("grant_type"), r.AuthMethod, r.Form.Get("scope"))
	}
	// Output:
	// 200 OK ok /mcp/tools/list
	// 200 OK ok /mcp/tools/call
	// token request: client_credentials, client_secret_basic, scope "tools:read"
	// token request: client_credentials, client_secret_basic, scope "tools:read tools:call"
}

// A service acting for a user of an enterprise: the user's ID token from
// the enterprise IdP (kept from their single sign-on) is exchanged at the
// IdP for an ID-JAG, which the MCP server's authorization server redeems
// for an access token. The IdP's policy decides; no consent screen.
func ExampleEnterprise() {
	e := &exampleEnv{}
	defer e.close()
	idp := newIdP(e)
	as := newAuthServer(e)
	register(as, &asClient{id: "mcp-client", secret: "mcp-secret", method: "client_secret_basic"})
	as.TrustIDJAGIssuer(idp.issuer, &idp.key.PublicKey)
	idp.mcpID[as.IssuerID()] = "mcp-client"
	mcp := newResourceServer(e, as)
	mcp.needs = map[string]string{"/mcp/tools/call": "tools:call"}
	idToken := idp.idToken(e, "alice@example.com", time.Hour)

	ts, err := stepup.NewTokenSource(mcp.resource, nil, stepup.WithEscalator(&grants.Enterprise{
		IDToken:   func(context.Context) (string, error) { return idToken, nil },
		IdPIssuer: idp.issuer,
		IdPClient: grants.PublicClient{ClientID: idp.clientID},
		Client:    grants.ClientSecret{ClientID: "mcp-client", Secret: "mcp-secret"},
	}))
	if err != nil {
		log.Fatal(err)
	}
	hc := &http.Client{Transport: &stepup.Transport{Source: ts}}
	show(hc, mcp.srv.URL+"/mcp/tools/call")
	for _, x := range idp.exchangeRequests() {
		fmt.Printf("at the IdP: %s for %s\n", x.Get("requested_token_type"), x.Get("scope"))
	}
	for _, r := range as.TokenRequests() {
		fmt.Printf("at the authorization server: %s, %s\n", r.Form.Get("grant_type"), r.AuthMethod)
	}
	// Output:
	// 200 OK ok /mcp/tools/call
	// at the IdP: urn:ietf:params:oauth:token-type:id-jag for tools:call
	// at the authorization server: urn:ietf:params:oauth:grant-type:jwt-bearer, client_secret_basic
}

// A CI job whose platform gives it an OpenID Connect token in a file,
// which the MCP server's authorization server trusts: the JWT bearer
// grant presents it, read again at each new token since the platform
// rotates it.
func ExampleWorkload() {
	e := &exampleEnv{}
	defer e.close()
	as := newAuthServer(e)
	mcp := newResourceServer(e, as)
	mcp.needs = map[string]string{"/mcp/tools/call": "tools:call"}
	// The platform: its key, which the authorization server trusts, and
	// the token it writes for the job.
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		log.Fatal(err)
	}
	as.TrustJWTIssuer("https://ci.example", &key.PublicKey)
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key}, nil)
	if err != nil {
		log.Fatal(err)
	}
	jobToken, err := jwt.Signed(signer).Claims(jwt.Claims{
		Issuer: "https://ci.example", Subject: "repo:reports:job", Audience: jwt.Audience{as.IssuerID()},
		Expiry: jwt.NewNumericDate(time.Now().Add(10 * time.Minute)),
	}).Serialize()
	if err != nil {
		log.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "workload")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	file := filepath.Join(dir, "mcp-token")
	if err := os.WriteFile(file, []byte(jobToken), 0o600); err != nil {
		log.Fatal(err)
	}

	ts, err := stepup.NewTokenSource(mcp.resource, nil, stepup.WithEscalator(&grants.Workload{Token: grants.TokenFile(file)}))
	if err != nil {
		log.Fatal(err)
	}
	hc := &http.Client{Transport: &stepup.Transport{Source: ts}}
	show(hc, mcp.srv.URL+"/mcp/tools/call")
	for _, r := range as.TokenRequests() {
		fmt.Printf("token request: %s, scope %q\n", r.Form.Get("grant_type"), r.Form.Get("scope"))
	}
	// Output:
	// 200 OK ok /mcp/tools/call
	// token request: urn:ietf:params:oauth:grant-type:jwt-bearer, scope "tools:call"
}
