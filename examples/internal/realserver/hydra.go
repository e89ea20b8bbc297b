package realserver

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// HydraOptions configure [StartHydra].
type HydraOptions struct {
	// Resource is the resource indicator (RFC 8707) of the test's
	// resource server, an absolute URL. Hydra has no resource parameter;
	// its consent app grants the tokens this audience when the
	// authorization request names it (see [StartHydra]). Required.
	Resource string
	// Scopes are the resource's scopes clients may ask for, beside
	// openid and offline_access; nil means mcp:read and mcp:write.
	Scopes []string
	// AccessTokenTTL is the access tokens' lifetime; zero means Hydra's
	// default of an hour.
	AccessTokenTTL time.Duration
}

// Hydra's readiness and shutdown bounds.
const (
	hydraStartTimeout  = 60 * time.Second
	hydraStopTimeout   = 10 * time.Second
	hydraPollInterval  = 50 * time.Millisecond
	hydraStartAttempts = 3
)

// errHydraExited says that Hydra ended before it was ready.
var errHydraExited = errors.New("hydra exited")

// StartHydra starts Ory Hydra (github.com/ory/hydra/v2, built from the
// servers/hydra module, or $STEPUP_HYDRA) on loopback for the test and
// stops it at cleanup. It skips the test when Hydra cannot be had, unless
// STEPUP_REQUIRE_REAL_SERVERS=1.
//
// Hydra runs in memory (DSN=memory) with a fresh system secret, dynamic
// client registration (RFC 7591) open and advertised, PKCE required, and
// refresh token rotation with no grace period, so that a refresh token
// used twice revokes the grant (Hydra's default). Its access tokens are
// opaque and [Server.Verify] introspects them at the admin API (RFC 7662):
// a revocation then reaches the resource server at once, which Hydra's
// JWT access tokens would not. Its public port is reached through a
// counting reverse proxy whose URL is the issuer, so that discovery, the
// browser and the client all go through it. Any port of a loopback
// redirect URI matches the one registered (RFC 8252 §7.3).
//
// Hydra delegates login and consent to an app of the deployment; the one
// here plays the person through Hydra's admin API, as the current
// [Decision] says. Hydra hands the acr_values to the login app, which
// decides the ACR (OpenID Connect Core 1.0 §3.1.2.1 makes them voluntary)
// and the consent app puts it and the login's time into the access token;
// Hydra itself enforces max_age and prompt=login.
//
// Hydra knows no resource parameter (RFC 8707): it binds tokens to
// audiences a consent app grants and the client is allowed. The app grants
// the audience opts.Resource when the authorization request asks for it as
// resource (or audience), and allows it to the client, the role RFC 8707
// §2 gives the authorization server, so that [Server.Verify] can check the
// audience as a resource server does. Revocation (RFC 7009) of either
// token revokes the whole grant.
func StartHydra(t testing.TB, opts HydraOptions) *Server {
	t.Helper()
	if opts.Resource == "" {
		t.Fatal("realserver: HydraOptions.Resource is required")
	}
	if opts.Scopes == nil {
		opts.Scopes = []string{"mcp:read", "mcp:write"}
	}
	bin := hydraBinary(t)
	// One transport for every request the harness makes, its idle
	// connections closed last at cleanup, so that no goroutine outlives
	// the test.
	tr := http.DefaultTransport.(*http.Transport).Clone()
	t.Cleanup(tr.CloseIdleConnections)
	hc := &http.Client{Transport: tr, Timeout: 10 * time.Second}

	count := newCounter(hydraAuthPath, "/oauth2/register", "/oauth2/token", "") // Hydra has no pushed authorization requests
	// The proxy and the app listen now, as Hydra's configuration names
	// them, and serve once Hydra is up and the app knows its admin API.
	proxy := httptest.NewUnstartedServer(nil)
	t.Cleanup(proxy.Close)
	issuer := "http://" + proxy.Listener.Addr().String()
	app := &hydraApp{resource: opts.Resource, client: hc}
	appSrv := httptest.NewUnstartedServer(app.handler())
	t.Cleanup(appSrv.Close)
	appURL := "http://" + appSrv.Listener.Addr().String()

	dir := t.TempDir()
	var publicURL string
	for attempt := 1; ; attempt++ {
		public, admin := freePort(t), freePort(t)
		cfgPath := filepath.Join(dir, fmt.Sprintf("hydra-%d.json", attempt)) // JSON is YAML, which Hydra reads
		if err := os.WriteFile(cfgPath, hydraConfig(t, opts, issuer, appURL, public, admin), 0o600); err != nil {
			t.Fatal(err)
		}
		publicURL = fmt.Sprintf("http://127.0.0.1:%d", public)
		app.admin = fmt.Sprintf("http://127.0.0.1:%d", admin)
		logPath := filepath.Join(dir, fmt.Sprintf("hydra-%d.log", attempt))
		proc := startHydraProcess(t, bin, cfgPath, logPath)
		err := waitReady(hc, proc, app.admin+"/health/ready", publicURL+"/health/ready")
		if err == nil {
			proc.ready = true
			break
		}
		// Another process may have taken a port between freePort and
		// Hydra's listen: Hydra then exits, and gets other ports.
		if errors.Is(err, errHydraExited) && attempt < hydraStartAttempts {
			t.Logf("realserver: Hydra exited at start (%v), trying other ports", err)
			continue
		}
		t.Fatalf("realserver: Hydra did not come up: %v\n%s", err, logTail(logPath))
	}

	appSrv.Start()
	target, _ := url.Parse(publicURL)
	proxy.Config.Handler = hydraCounting(count, hydraProxy(target, tr))
	proxy.Start()

	return &Server{
		Name:     "Ory Hydra " + hydraVersion(bin),
		Issuer:   issuer,
		Resource: opts.Resource,
		Features: Features{
			DynamicRegistration: true,
			Consent:             true,
			ResourceIndicators:  false, // no resource parameter; audiences instead
			RefreshRotation:     true,
			PartialConsent:      true,
			StepUpAuthn:         true,
			Revocation:          true,
		},
		Browser: newHydraBrowser(t, tr).open,
		Decide:  app.decide,
		Verify: func(ctx context.Context, token string) (*TokenInfo, error) {
			return app.verify(ctx, issuer, token)
		},
		Revoke: func(ctx context.Context, token string) error {
			return app.revoke(ctx, issuer, token)
		},
		Counts:         count.counts,
		TrustJWTIssuer: app.trustJWTIssuer,
	}
}

// hydraConfig is the configuration file of one Hydra, in JSON.
func hydraConfig(t testing.TB, opts HydraOptions, issuer, app string, public, admin int) []byte {
	t.Helper()
	secret := make([]byte, 32)
	rand.Read(secret)
	scopes := append([]string{"openid", "offline_access", "offline"}, opts.Scopes...)
	ttl := map[string]string{}
	if opts.AccessTokenTTL > 0 {
		ttl["access_token"] = opts.AccessTokenTTL.String()
	}
	cfg := map[string]any{
		"dsn": "memory",
		"dev": true, // http on loopback: no TLS, cookies without Secure
		"log": map[string]any{"level": "info", "format": "text"},
		"serve": map[string]any{
			"public": map[string]any{"host": "127.0.0.1", "port": public},
			"admin":  map[string]any{"host": "127.0.0.1", "port": admin},
			// Browsers refuse SameSite=None without Secure, as on http.
			"cookies": map[string]any{"same_site_mode": "Lax"},
		},
		"secrets": map[string]any{"system": []string{hex.EncodeToString(secret)}},
		"urls": map[string]any{
			"self":    map[string]any{"issuer": issuer},
			"login":   app + "/login",
			"consent": app + "/consent",
			"error":   app + "/error",
		},
		"oidc": map[string]any{
			// A registration without a scope gets these: the client may
			// then ask for any of them.
			"dynamic_client_registration": map[string]any{"enabled": true, "default_scope": scopes},
		},
		"webfinger": map[string]any{
			"oidc_discovery": map[string]any{
				"supported_scope": opts.Scopes,
				// Hydra serves registration at /oauth2/register but
				// advertises it only when told (RFC 8414 §2).
				"client_registration_url": issuer + "/oauth2/register",
			},
		},
		// Scopes are whole strings (RFC 6749 §3.3): Hydra's default
		// wildcard strategy gives a "*" in a client's scope a meaning.
		"strategies": map[string]any{"access_token": "opaque", "scope": "exact"},
		"ttl":        ttl,
		"oauth2": map[string]any{
			"pkce":  map[string]any{"enforced": true},
			"grant": map[string]any{"refresh_token": map[string]any{"rotation_grace_period": "0s"}},
		},
	}
	b, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// freePort returns a TCP port free on 127.0.0.1 at the time of asking.
// Hydra takes ports, not listeners; another process could take the port
// before Hydra does, which waitReady then reports.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// hydraProcess is a running Hydra.
type hydraProcess struct {
	cmd    *exec.Cmd
	exited chan struct{} // closed when the process has ended
	err    error         // its Wait error, once exited is closed
	ready  bool          // it came up: its log is the test's to show
}

// startHydraProcess runs bin serve all, its output to logPath, and stops it
// at cleanup: SIGTERM, then a kill if it lingers.
func startHydraProcess(t testing.TB, bin, cfgPath, logPath string) *hydraProcess {
	t.Helper()
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "serve", "all", "--dev", "--config", cfgPath)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// Settings come from the file alone, not from the environment the
	// tests run in.
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		hydraUnavailable(t, "starting Hydra %s: %v", bin, err)
	}
	p := &hydraProcess{cmd: cmd, exited: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		logFile.Close()
		close(p.exited)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-p.exited:
		case <-time.After(hydraStopTimeout):
			_ = cmd.Process.Kill()
			<-p.exited
		}
		if p.ready && t.Failed() {
			t.Logf("Hydra's log:\n%s", logTail(logPath))
		}
	})
	return p
}

// waitReady polls Hydra's health endpoints until both answer 200, the
// process ends, or hydraStartTimeout passes.
func waitReady(hc *http.Client, p *hydraProcess, urls ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), hydraStartTimeout)
	defer cancel()
	tick := time.NewTicker(hydraPollInterval)
	defer tick.Stop()
	for _, u := range urls {
		for !healthy(ctx, hc, u) {
			select {
			case <-p.exited:
				return fmt.Errorf("%w: %v", errHydraExited, p.err)
			case <-ctx.Done():
				return fmt.Errorf("%s: %w", u, ctx.Err())
			case <-tick.C:
			}
		}
	}
	return nil
}

// healthy reports whether GET u answers 200.
func healthy(ctx context.Context, hc *http.Client, u string) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return false
	}
	resp, err := hc.Do(req)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode == http.StatusOK
}

// logTail returns the end of the log at path, for a failing test.
func logTail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	const max = 8 << 10
	if len(b) > max {
		b = b[len(b)-max:]
	}
	return string(b)
}

// hydraVersion asks bin its version.
func hydraVersion(bin string) string {
	out, err := exec.Command(bin, "version").Output()
	if err != nil {
		return "(version unknown)"
	}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "Version:"); ok {
			return strings.TrimSpace(v)
		}
	}
	return "(version unknown)"
}
