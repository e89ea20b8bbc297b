package realserver

import (
	"bufio"
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// OIDCProviderVersion is the release of panva's oidc-provider
// (https://www.npmjs.com/package/oidc-provider) that [StartOIDCProvider]
// is configured for and CI installs.
const OIDCProviderVersion = "9.13.3"

// The authentication context classes the servers that support step-up
// authentication (RFC 9470) offer: the default, and a stronger one.
const (
	ACRPassword = "urn:stepup:acr:password"
	ACRMFA      = "urn:stepup:acr:mfa"
)

// The scopes the servers know: the OpenID ones, and the resource's.
const (
	ScopeOpenID  = "openid"
	ScopeOffline = "offline_access"
	ScopeRead    = "mcp:read"
	ScopeWrite   = "mcp:write"
)

//go:embed oidcprovider.mjs
var oidcProviderScript []byte

// adminClient is the confidential client, configured statically, with
// which Revoke revokes the person's tokens, as the provider's console would.
const adminClient = "stepup-admin"

// OIDCProviderOptions configures [StartOIDCProvider].
type OIDCProviderOptions struct {
	// Resource is the resource indicator (RFC 8707) of the one resource
	// server the provider issues access tokens for. Required.
	Resource string
	// AccessTokenTTL is the access tokens' lifetime; 0 means 10 minutes.
	AccessTokenTTL time.Duration
	// DPoP, when set, makes every client's tokens DPoP-bound (RFC 9449:
	// dpop_bound_access_tokens for every client, §5.2) and requires a
	// server nonce in every proof (features.dPoP with requireNonce, §8)
	// at the token and pushed authorization request endpoints.
	DPoP bool
}

// StartOIDCProvider starts panva's oidc-provider on loopback, configured as
// an MCP deployment's authorization server (see oidcprovider.mjs): open
// dynamic registration, PKCE, resource indicators with JWT access tokens
// for opts.Resource carrying the scopes mcp:read and mcp:write, refresh
// tokens for offline_access only, rotated, a reused one revoking the grant,
// acr values [ACRPassword] and [ACRMFA], and revocation. It stops when t
// ends.
//
// Node.js is $STEPUP_NODE, else the Node 22 cached for the conformance
// suite, else node on PATH; the package is in
// $STEPUP_OIDC_PROVIDER_DIR/node_modules, by default
// ~/.cache/stepup-realservers/oidc-provider.
func StartOIDCProvider(t testing.TB, opts OIDCProviderOptions) *Server {
	t.Helper()
	if opts.Resource == "" {
		t.Fatal("realserver: OIDCProviderOptions.Resource is required")
	}
	if opts.AccessTokenTTL <= 0 {
		opts.AccessTokenTTL = 10 * time.Minute
	}
	node, err := findNode()
	if err != nil {
		missing(t, "oidc-provider: no Node.js: %v", err)
	}
	dir := oidcProviderDir()
	pkg, err := os.ReadFile(filepath.Join(dir, "node_modules", "oidc-provider", "package.json"))
	if err != nil {
		missing(t, "oidc-provider is not installed in %s (npm install oidc-provider@%s there, or set STEPUP_OIDC_PROVIDER_DIR)", dir, OIDCProviderVersion)
	}
	var installed struct{ Version string }
	if err := json.Unmarshal(pkg, &installed); err != nil || installed.Version == "" {
		t.Fatalf("realserver: %s/node_modules/oidc-provider/package.json names no version: %v", dir, err)
	}

	// The issuer is a counting proxy in front of the provider, started
	// first: the provider must know its issuer before it listens.
	count := newCounter("/auth", "/reg", "/token", "/request")
	var backend *url.URL
	front := httptest.NewUnstartedServer(count.wrap(&httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(backend)
			r.Out.Host = r.In.Host // the provider builds its URLs from the issuer's host
		},
	}))
	issuer := "http://" + front.Listener.Addr().String()
	adminSecret := randomHex(t)

	script := filepath.Join(t.TempDir(), "oidcprovider.mjs")
	if err := os.WriteFile(script, oidcProviderScript, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := json.Marshal(map[string]any{
		"issuer":         issuer,
		"resource":       opts.Resource,
		"accessTokenTTL": int(opts.AccessTokenTTL / time.Second),
		"acrValues":      []string{ACRPassword, ACRMFA},
		"resourceScopes": []string{ScopeRead, ScopeWrite},
		"packageDir":     dir,
		"admin":          map[string]string{"id": adminClient, "secret": adminSecret},
		"dpop":           opts.DPoP,
	})
	if err != nil {
		t.Fatal(err)
	}
	backend = startNode(t, node, script, string(cfg))
	front.Start()
	t.Cleanup(front.Close)

	hc := &http.Client{Transport: &http.Transport{}}
	t.Cleanup(hc.CloseIdleConnections)
	v := &jwtVerifier{issuer: issuer, resource: opts.Resource, jwksURL: issuer + "/jwks", hc: hc}
	p := newPerson(t, issuer)
	return &Server{
		Name:     "oidc-provider " + installed.Version, // what ran, for the table
		Issuer:   issuer,
		Resource: opts.Resource,
		Features: Features{
			DynamicRegistration: true, ResourceIndicators: true, RefreshRotation: true,
			Consent: true, PartialConsent: true, StepUpAuthn: true, Revocation: true,
		},
		Browser: p.browse,
		Decide:  p.decide,
		Verify:  v.verify,
		Revoke: func(ctx context.Context, token string) error {
			return revoke(ctx, hc, issuer+"/token/revocation", token, adminClient, adminSecret)
		},
		Counts: count.counts,
	}
}

// oidcProviderDir is where the oidc-provider package is installed.
func oidcProviderDir() string {
	if d := os.Getenv("STEPUP_OIDC_PROVIDER_DIR"); d != "" {
		return d
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return filepath.Join(".cache", "stepup-realservers", "oidc-provider")
	}
	return filepath.Join(home, ".cache", "stepup-realservers", "oidc-provider")
}

// startNode runs script with node and returns the URL it prints once
// listening. The process ends when t does: its standard input closes,
// which the script takes as the signal to exit.
func startNode(t testing.TB, node, script, cfg string) *url.URL {
	t.Helper()
	cmd := exec.Command(node, script, cfg)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr := &lockedBuffer{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("realserver: starting %s: %v", node, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		stdin.Close()
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("oidc-provider's standard error:\n%s", stderr)
		}
	})

	ready := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(stdout).ReadString('\n')
		ready <- line
		_, _ = io.Copy(io.Discard, stdout)
	}()
	var line string
	select {
	case line = <-ready:
	case <-time.After(30 * time.Second):
		t.Fatalf("realserver: oidc-provider did not listen within 30s:\n%s", stderr)
	}
	var msg struct{ Listening string }
	if err := json.Unmarshal([]byte(line), &msg); err != nil || msg.Listening == "" {
		t.Fatalf("realserver: oidc-provider did not start (%q):\n%s", line, stderr)
	}
	u, err := url.Parse(msg.Listening)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// revoke revokes token at endpoint (RFC 7009 §2.1) as the confidential
// client id.
func revoke(ctx context.Context, hc *http.Client, endpoint, token, id, secret string) error {
	form := url.Values{"token": {token}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret)) // RFC 6749 §2.3.1
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("realserver: revocation: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		return fmt.Errorf("realserver: revocation: %s: %s", resp.Status, body)
	}
	return nil
}

// lockedBuffer is a process's standard error, written by the os/exec
// copier and read by the test.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
