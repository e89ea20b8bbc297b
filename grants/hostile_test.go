package grants_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stepup-go/stepup"
	"github.com/stepup-go/stepup/grants"
)

const secret = "hunter2-very-secret"

// Token endpoints that answer badly get a typed error, after one token
// request, with nothing of the secret, the assertion or the key in it.
func TestHostileTokenEndpoint(t *testing.T) {
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	for _, tc := range []struct {
		name   string
		answer func(w http.ResponseWriter, r *http.Request)
		status int
		code   string
	}{
		{"an HTML page with 200", func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "text/html")
			fmt.Fprint(w, "<html><body>Sign in</body></html>")
		}, 0, ""},
		{"an HTML page with 500", func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "text/html")
			w.WriteHeader(http.StatusInternalServerError)
			fmt.Fprint(w, "<html>oops</html>")
		}, 500, ""},
		{"a 500 error response", func(w http.ResponseWriter, _ *http.Request) {
			oauthError(w, http.StatusInternalServerError, "server_error", "down")
		}, 500, "server_error"},
		{"an assertion rejected, echoed back", func(w http.ResponseWriter, r *http.Request) {
			oauthError(w, http.StatusUnauthorized, "invalid_client", "bad assertion "+r.PostForm.Get("client_assertion")+" or secret "+r.PostForm.Get("client_secret"))
		}, 401, "invalid_client"},
		{"a token of another type", func(w http.ResponseWriter, _ *http.Request) {
			writeJSON(w, http.StatusOK, map[string]any{"access_token": "x", "token_type": "DPoP"})
		}, 0, ""},
		{"no access token", func(w http.ResponseWriter, _ *http.Request) {
			writeJSON(w, http.StatusOK, map[string]any{"token_type": "Bearer"})
		}, 0, ""},
	} {
		for _, auth := range []grants.ClientAuth{
			grants.ClientSecret{ClientID: "svc", Secret: secret, Method: grants.MethodPost},
			grants.PrivateKeyJWT{ClientID: "svc", Key: ec},
		} {
			t.Run(fmt.Sprintf("%s, %T", tc.name, auth), func(t *testing.T) {
				w := newWorld(t)
				w.as.TokenHook = func(rw http.ResponseWriter, r *http.Request) bool { tc.answer(rw, r); return true }
				var logs lockedBuffer
				w.client(t, &grants.ClientCredentials{Auth: auth, Discovery: disc()})
				w.hc.Transport.(*stepup.Transport).Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))

				_, err := w.get(t, "/mcp/a")
				require.Error(t, err)
				var ce *stepup.ChallengeError
				require.ErrorAs(t, err, &ce)
				var te *grants.TokenError
				require.ErrorAs(t, err, &te)
				assert.Equal(t, tc.status, te.StatusCode)
				assert.Equal(t, tc.code, te.Code)
				assert.NotErrorIs(t, err, stepup.ErrDeclined)
				reqs := w.as.TokenRequests()
				require.Len(t, reqs, 1, "no loop")
				leaks := []string{secret, "BEGIN", fmt.Sprint(ec.D)}
				if a := reqs[0].Form.Get("client_assertion"); a != "" {
					leaks = append(leaks, a, a[strings.LastIndexByte(a, '.')+1:])
				}
				for _, s := range []string{err.Error(), fmt.Sprintf("%+v", err), fmt.Sprintf("%#v", err), logs.String()} {
					for _, leak := range leaks {
						assert.NotContains(t, s, leak)
					}
				}
			})
		}
	}
}

func TestKeyType(t *testing.T) {
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	short, err := rsa.GenerateKey(rand.Reader, 1024)
	require.NoError(t, err)
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	for _, tc := range []struct {
		name string
		auth grants.PrivateKeyJWT
	}{
		{"an RSA key for ES256", grants.PrivateKeyJWT{ClientID: "svc", Key: rsaKey, Algorithm: "ES256"}},
		{"a P-256 key for ES384", grants.PrivateKeyJWT{ClientID: "svc", Key: ec, Algorithm: "ES384"}},
		{"a P-256 key for HS256", grants.PrivateKeyJWT{ClientID: "svc", Key: ec, Algorithm: "HS256"}},
		{"a 1024-bit RSA key", grants.PrivateKeyJWT{ClientID: "svc", Key: short}},
		{"no key", grants.PrivateKeyJWT{ClientID: "svc"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t)
			w.client(t, &grants.ClientCredentials{Auth: tc.auth, Discovery: disc()})
			_, err := w.get(t, "/mcp/a")
			require.ErrorIs(t, err, grants.ErrKeyType)
			assert.Empty(t, w.as.TokenRequests(), "nothing sent")
			if k, ok := tc.auth.Key.(*rsa.PrivateKey); ok {
				assert.NotContains(t, err.Error(), fmt.Sprint(k.D))
			}
		})
	}
}

func TestParsePrivateKeyPEM(t *testing.T) {
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	pkcs8, err := x509.MarshalPKCS8PrivateKey(ec)
	require.NoError(t, err)
	sec1, err := x509.MarshalECPrivateKey(ec)
	require.NoError(t, err)
	for _, typ := range []string{"PRIVATE KEY", "EC PRIVATE KEY"} {
		der := pkcs8
		if typ == "EC PRIVATE KEY" {
			der = sec1
		}
		k, err := grants.ParsePrivateKeyPEM(pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}))
		require.NoError(t, err, typ)
		assert.True(t, ec.Equal(k), typ)
	}
	body := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: sec1}) // SEC 1 under the PKCS #8 label
	_, err = grants.ParsePrivateKeyPEM(body)
	require.Error(t, err)
	assert.NotContains(t, err.Error(), string(body[30:60]))
	_, err = grants.ParsePrivateKeyPEM([]byte("not a key"))
	require.Error(t, err)
	_, err = grants.ParsePrivateKeyPEM(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte{1, 2, 3}}))
	require.ErrorContains(t, err, "not a private key")
}

// Neither a secret nor a key prints, in any verb or in log/slog.
func TestClientAuthDoesNotPrint(t *testing.T) {
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	for _, v := range []any{
		grants.ClientSecret{ClientID: "svc", Secret: secret},
		&grants.ClientSecret{ClientID: "svc", Secret: secret},
		grants.PrivateKeyJWT{ClientID: "svc", Key: ec},
		&grants.ClientCredentials{Auth: grants.ClientSecret{ClientID: "svc", Secret: secret}},
		&grants.ClientCredentials{Auth: grants.PrivateKeyJWT{ClientID: "svc", Key: ec}},
		&grants.Enterprise{IdPClient: grants.ClientSecret{ClientID: "svc", Secret: secret}, Client: grants.PrivateKeyJWT{ClientID: "svc", Key: ec}},
	} {
		var logs bytes.Buffer
		slog.New(slog.NewJSONHandler(&logs, nil)).Info("auth", "auth", v)
		for _, s := range []string{fmt.Sprint(v), fmt.Sprintf("%+v", v), fmt.Sprintf("%#v", v), logs.String()} {
			assert.NotContains(t, s, secret)
			assert.NotContains(t, s, fmt.Sprint(ec.D))
		}
	}
}

// lockedBuffer is a log destination that goroutines share: an escalation
// logs its end from its own.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// A token endpoint that hangs up gets a wrapped network error, not a
// TokenError, after one request.
func TestTokenEndpointHangsUp(t *testing.T) {
	w := newWorld(t)
	w.as.TokenHook = func(rw http.ResponseWriter, _ *http.Request) bool {
		conn, _, err := rw.(http.Hijacker).Hijack()
		if err == nil {
			conn.Close()
		}
		return true
	}
	w.client(t, &grants.ClientCredentials{Auth: grants.ClientSecret{ClientID: "svc", Secret: secret}, Discovery: disc()})
	_, err := w.get(t, "/mcp/a")
	require.Error(t, err)
	var te *grants.TokenError
	assert.False(t, errors.As(err, &te), "no answer, no TokenError: %v", err)
	assert.Contains(t, err.Error(), "token request to "+w.as.IssuerID()+"/token")
	assert.NotContains(t, err.Error(), secret)
	assert.Len(t, w.as.TokenRequests(), 1)
}
