package authcode_test

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stepup-go/stepup"
	"github.com/stepup-go/stepup/authcode"
)

// browser stands for the person's browser: it follows the authorization
// URL through the authorization server's redirect to the loopback
// redirect URI, and keeps the last page it got.
type browser struct {
	client     *http.Client
	lastStatus int
	lastPage   string
}

func newBrowser(t *testing.T) *browser {
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	return &browser{client: &http.Client{Transport: tr}}
}

func (b *browser) open(ctx context.Context, authURL string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, authURL, nil)
	if err != nil {
		return err
	}
	resp, err := b.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	page, err := io.ReadAll(resp.Body)
	b.lastStatus, b.lastPage = resp.StatusCode, string(page)
	return err
}

func redirectURIOf(t *testing.T, authURL string) *url.URL {
	u, err := url.Parse(authURL)
	require.NoError(t, err)
	r, err := url.Parse(u.Query().Get("redirect_uri"))
	require.NoError(t, err)
	return r
}

func loopbackRequest(w *world) *stepup.EscalationRequest {
	return &stepup.EscalationRequest{
		Reason:           stepup.ReasonAuthorizationRequired,
		Scopes:           stepup.Scopes{"read"},
		MaxAge:           stepup.NoMaxAge,
		Resource:         w.rs.resource,
		ResourceMetadata: w.rs.metadataURL(),
	}
}

func TestLoopbackLogin(t *testing.T) {
	w := newWorld(t)
	b := newBrowser(t)
	w.esc.Receiver = &authcode.Loopback{Open: b.open}

	g, err := w.esc.Escalate(context.Background(), loopbackRequest(w))
	require.NoError(t, err)
	assert.NotEmpty(t, g.Token.AccessToken)
	assert.Equal(t, http.StatusOK, b.lastStatus)
	assert.Contains(t, b.lastPage, "Authorization received")

	redirect, err := url.Parse(w.as.AuthorizationRequests()[0].Get("redirect_uri"))
	require.NoError(t, err)
	assert.Equal(t, "http", redirect.Scheme)
	assert.Equal(t, "127.0.0.1", redirect.Hostname(), "RFC 8252 §7.3: the loopback IP literal")
	assert.NotEqual(t, "", redirect.Port())
	assert.Equal(t, authcode.DefaultCallbackPath, redirect.Path)
	assertPortFree(t, redirect.Port())
}

// A response whose state is not the request's is refused with a page,
// and the receiver goes on waiting for the real one.
func TestLoopbackWrongStateRefused(t *testing.T) {
	w := newWorld(t)
	b := newBrowser(t)
	var refused []int
	w.esc.Receiver = &authcode.Loopback{Open: func(ctx context.Context, authURL string) error {
		cb := redirectURIOf(t, authURL)
		for _, q := range []string{"code=stolen&state=forged", "code=stolen", "code=stolen&state=" + url.QueryEscape(stateOf(t, authURL)) + "&state=x"} {
			cb.RawQuery = q
			require.NoError(t, b.open(ctx, cb.String()))
			refused = append(refused, b.lastStatus)
			assert.NotContains(t, b.lastPage, "stolen", "nothing of the request is reflected")
		}
		return b.open(ctx, authURL)
	}}

	g, err := w.esc.Escalate(context.Background(), loopbackRequest(w))
	require.NoError(t, err)
	assert.NotEmpty(t, g.Token.AccessToken)
	assert.Equal(t, []int{http.StatusBadRequest, http.StatusBadRequest, http.StatusBadRequest}, refused)
	trs := w.as.TokenRequests()
	require.Len(t, trs, 1)
	assert.NotEqual(t, "stolen", trs[0].Form.Get("code"))
}

func stateOf(t *testing.T, authURL string) string {
	u, err := url.Parse(authURL)
	require.NoError(t, err)
	return u.Query().Get("state")
}

// A context cancelled while the receiver waits for the browser ends the
// wait at once, and the port is free again.
func TestLoopbackCancelFreesPort(t *testing.T) {
	w := newWorld(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ports := make(chan string, 1)
	w.esc.Receiver = &authcode.Loopback{Open: func(_ context.Context, authURL string) error {
		ports <- redirectURIOf(t, authURL).Port()
		return nil // the person has the URL, and does nothing
	}}
	errs := make(chan error, 1)
	go func() {
		_, err := w.esc.Escalate(ctx, loopbackRequest(w))
		errs <- err
	}()
	port := <-ports
	cancel()
	assert.ErrorIs(t, <-errs, context.Canceled)
	assertPortFree(t, port)
	assert.Empty(t, w.as.TokenRequests())
}

// A failure to hand the URL over ends the escalation and frees the port.
func TestLoopbackOpenFails(t *testing.T) {
	w := newWorld(t)
	var port string
	w.esc.Receiver = &authcode.Loopback{Open: func(_ context.Context, authURL string) error {
		port = redirectURIOf(t, authURL).Port()
		return syscall.ENOENT
	}}
	_, err := w.esc.Escalate(context.Background(), loopbackRequest(w))
	assert.ErrorIs(t, err, syscall.ENOENT)
	assertPortFree(t, port)
}

func TestLoopbackFixedPortAndPath(t *testing.T) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	require.NoError(t, err)
	port := ln.Addr().(*net.TCPAddr).Port
	require.NoError(t, ln.Close())

	w := newWorld(t)
	b := newBrowser(t)
	w.esc.Receiver = &authcode.Loopback{Open: b.open, Port: port, Path: "/oauth/done"}
	_, err = w.esc.Escalate(context.Background(), loopbackRequest(w))
	require.NoError(t, err)
	assert.Equal(t, "http://127.0.0.1:"+strconv.Itoa(port)+"/oauth/done", w.as.AuthorizationRequests()[0].Get("redirect_uri"))

	_, err = (&authcode.Loopback{Path: "no-slash"}).Receive(context.Background(), nil)
	assert.ErrorContains(t, err, "does not start with /")
}

// An error response reaches the browser as a refusal page and the caller
// as stepup.ErrDeclined.
func TestLoopbackDeclined(t *testing.T) {
	w := newWorld(t)
	w.as.SetConsent(func([]string, url.Values) ([]string, string) { return nil, "access_denied" })
	b := newBrowser(t)
	w.esc.Receiver = &authcode.Loopback{Open: b.open}
	_, err := w.esc.Escalate(context.Background(), loopbackRequest(w))
	assert.ErrorIs(t, err, stepup.ErrDeclined)
	assert.Contains(t, b.lastPage, "not granted")
}

func assertPortFree(t *testing.T, port string) {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:"+port)
	if assert.NoError(t, err, "port %s is free again", port) {
		ln.Close()
	}
}

func TestOpenBrowserRefusesOtherSchemes(t *testing.T) {
	for _, u := range []string{
		"javascript:alert(1)",
		"file:///etc/passwd",
		"data:text/html,<script>alert(1)</script>",
		"vbscript:msgbox",
		"https://as.example/authorize?x=a b",
		`https://as.example/authorize?x="&calc.exe`,
		"https://as.example/authorize?x=\n",
		"//as.example/authorize",
		"-a https://as.example/",
	} {
		assert.Error(t, authcode.OpenBrowser(context.Background(), u), u)
	}
}

// OpenBrowser starts the platform's launcher directly, the URL one
// argument, shell metacharacters and all.
func TestOpenBrowserExecsWithoutShell(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the launcher stand-in is for xdg-open")
	}
	dir := t.TempDir()
	fifo := filepath.Join(dir, "args")
	require.NoError(t, syscall.Mkfifo(fifo, 0o600))
	script := "#!/bin/sh\nprintf '%s\\n' \"$#\" \"$1\" > " + fifo + "\n"
	require.NoError(t, os.WriteFile(filepath.Join(dir, "xdg-open"), []byte(script), 0o700))
	t.Setenv("PATH", dir)

	authURL := "https://as.example/authorize?state=a;b&x=$(id)&y=`id`|z&w=>out"
	require.NoError(t, authcode.OpenBrowser(context.Background(), authURL))
	f, err := os.Open(fifo) // blocks until the launcher writes
	require.NoError(t, err)
	defer f.Close()
	sc := bufio.NewScanner(f)
	var lines []string
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	assert.Equal(t, []string{"1", authURL}, lines, "one argument, unchanged")
}
