package grants_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"

	"github.com/stepup-go/stepup/grants"
)

// The ID token comes from the login's token source; when its access token
// has expired, x/oauth2 refreshes it at the IdP, and the refresh
// response's ID token is the one taken.
func TestIDTokenFrom(t *testing.T) {
	var refreshes atomic.Int32
	idp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err != nil || r.PostForm.Get("grant_type") != "refresh_token" || r.PostForm.Get("refresh_token") != "rt-1" {
			oauthError(w, http.StatusBadRequest, "invalid_grant", "")
			return
		}
		refreshes.Add(1)
		writeJSON(w, http.StatusOK, map[string]any{"access_token": "at-2", "token_type": "Bearer", "expires_in": 3600, "id_token": "id-2"})
	}))
	t.Cleanup(idp.Close)
	cfg := &oauth2.Config{ClientID: "cli", Endpoint: oauth2.Endpoint{TokenURL: idp.URL, AuthStyle: oauth2.AuthStyleInParams}}
	login := (&oauth2.Token{AccessToken: "at-1", RefreshToken: "rt-1", Expiry: time.Now().Add(time.Hour)}).
		WithExtra(map[string]any{"id_token": "id-1"})
	hc := &http.Client{Transport: &http.Transport{}}
	t.Cleanup(hc.CloseIdleConnections)
	ctx := context.WithValue(context.Background(), oauth2.HTTPClient, hc)

	got, err := grants.IDTokenFrom(cfg.TokenSource(ctx, login))(ctx)
	require.NoError(t, err)
	assert.Equal(t, "id-1", got)
	assert.Zero(t, refreshes.Load())

	login.Expiry = time.Now().Add(-time.Minute)
	got, err = grants.IDTokenFrom(cfg.TokenSource(ctx, login))(ctx)
	require.NoError(t, err)
	assert.Equal(t, "id-2", got)
	assert.Equal(t, int32(1), refreshes.Load())

	_, err = grants.IDTokenFrom(oauth2.StaticTokenSource(&oauth2.Token{AccessToken: "at"}))(ctx)
	require.ErrorIs(t, err, grants.ErrNoSubjectToken)
}
