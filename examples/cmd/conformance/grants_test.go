package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stepup-go/stepup/grants"
)

// Each extension scenario's context, as the suite sends it, picks its
// grant; the authorization code scenarios keep the authcode Escalator,
// the pre-registered client too.
func TestChooseEscalator(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	der, err := x509.MarshalPKCS8PrivateKey(key)
	require.NoError(t, err)
	keyPEM, err := json.Marshal(string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})))
	require.NoError(t, err)
	for _, tc := range []struct {
		context string
		want    any
	}{
		{`{"name":"auth/client-credentials-basic","client_id":"c","client_secret":"s"}`, &grants.ClientCredentials{}},
		{`{"name":"auth/client-credentials-jwt","client_id":"c","private_key_pem":` + string(keyPEM) + `,"signing_algorithm":"ES256"}`, &grants.ClientCredentials{}},
		{`{"name":"auth/enterprise-managed-authorization","client_id":"c","client_secret":"s","idp_client_id":"i","idp_id_token":"t","idp_issuer":"http://127.0.0.1:1","idp_token_endpoint":"http://127.0.0.1:1/token"}`, &grants.Enterprise{}},
		{`{"name":"auth/wif-jwt-bearer","client_id":"w","valid_jwt":"j","wrong_audience_jwt":"x","expired_jwt":"y"}`, &grants.Workload{}},
		{`{"name":"auth/pre-registration","client_id":"c","client_secret":"s"}`, newEscalator(scenarioContext{})},
	} {
		var sc scenarioContext
		require.NoError(t, json.Unmarshal([]byte(tc.context), &sc))
		ac := newEscalator(sc)
		got, err := chooseEscalator(sc, ac, ac.Discovery)
		require.NoError(t, err, tc.context)
		assert.IsType(t, tc.want, got, sc.Name)
	}
	var sc scenarioContext
	require.NoError(t, json.Unmarshal([]byte(`{"name":"auth/client-credentials-jwt","client_id":"c","private_key_pem":"garbage"}`), &sc))
	_, err = chooseEscalator(sc, newEscalator(sc), nil)
	require.ErrorContains(t, err, "private key")
}
