package grantrecord

import (
	"crypto/aes"
	"crypto/cipher"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"

	"github.com/stepup-go/stepup"
	"github.com/stepup-go/stepup/dpop"
)

var testKey = stepup.StoreKey{Resource: "https://mcp.example.com/mcp", Issuer: "https://as.example.com"}

func testGrant() *stepup.SavedGrant {
	return &stepup.SavedGrant{
		Token:     &oauth2.Token{AccessToken: "secret-access", TokenType: "Bearer", RefreshToken: "secret-refresh", Expiry: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)},
		Requested: stepup.Scopes{"a", "b"},
		Granted:   stepup.Scopes{"a"},
		Issuer:    "https://as.example.com",
	}
}

func newAEAD(t testing.TB, fill byte) cipher.AEAD {
	block, err := aes.NewCipher([]byte(strings.Repeat(string(rune(fill)), 32)))
	require.NoError(t, err)
	aead, err := cipher.NewGCM(block)
	require.NoError(t, err)
	return aead
}

func TestRoundTrip(t *testing.T) {
	for name, c := range map[string]Codec{"clear": {}, "sealed": {AEAD: newAEAD(t, 'k')}} {
		t.Run(name, func(t *testing.T) {
			rec, err := c.Encode(testKey, testGrant())
			require.NoError(t, err)
			g, err := c.Decode(testKey, rec)
			require.NoError(t, err)
			want := testGrant()
			require.Equal(t, want.Token.AccessToken, g.Token.AccessToken)
			require.Equal(t, want.Token.RefreshToken, g.Token.RefreshToken)
			require.Equal(t, want.Token.TokenType, g.Token.TokenType)
			require.True(t, want.Token.Expiry.Equal(g.Token.Expiry))
			require.Equal(t, want.Requested, g.Requested)
			require.Equal(t, want.Granted, g.Granted)
			require.Equal(t, want.Issuer, g.Issuer)
		})
	}
}

// The record in the clear is the documented JSON.
func TestClearFormat(t *testing.T) {
	rec, err := Codec{}.Encode(testKey, testGrant())
	require.NoError(t, err)
	var env map[string]json.RawMessage
	require.NoError(t, json.Unmarshal(rec, &env))
	require.JSONEq(t, `1`, string(env["v"]))
	require.JSONEq(t, `"https://mcp.example.com/mcp"`, string(env["resource"]))
	require.JSONEq(t, `"https://as.example.com"`, string(env["issuer"]))
	require.Contains(t, string(env["grant"]), `"access_token":"secret-access"`)
}

// Sealing draws a fresh nonce each time and hides the key and the tokens.
func TestSealedFormat(t *testing.T) {
	c := Codec{AEAD: newAEAD(t, 'k')}
	a, err := c.Encode(testKey, testGrant())
	require.NoError(t, err)
	b, err := c.Encode(testKey, testGrant())
	require.NoError(t, err)
	require.NotEqual(t, a, b)
	for _, secret := range []string{"secret", "example.com"} {
		require.NotContains(t, string(a), secret)
	}
	var env map[string]json.RawMessage
	require.NoError(t, json.Unmarshal(a, &env))
	require.JSONEq(t, `1`, string(env["v"]))
	require.Len(t, env, 2)
}

func TestSealedBoundToItsKey(t *testing.T) {
	c := Codec{AEAD: newAEAD(t, 'k')}
	rec, err := c.Encode(testKey, testGrant())
	require.NoError(t, err)
	for _, other := range []stepup.StoreKey{
		{Resource: testKey.Resource},
		{Resource: testKey.Resource + "x", Issuer: testKey.Issuer},
		{Resource: testKey.Resource + "https://as.example.com"},
	} {
		_, err := c.Decode(other, rec)
		requireCorrupt(t, err)
	}
	_, err = Codec{AEAD: newAEAD(t, 'o')}.Decode(testKey, rec)
	requireCorrupt(t, err)
}

func TestModesDoNotMix(t *testing.T) {
	sealed := Codec{AEAD: newAEAD(t, 'k')}
	rec, err := sealed.Encode(testKey, testGrant())
	require.NoError(t, err)
	_, err = Codec{}.Decode(testKey, rec)
	requireCorrupt(t, err)
	rec, err = Codec{}.Encode(testKey, testGrant())
	require.NoError(t, err)
	_, err = sealed.Decode(testKey, rec)
	requireCorrupt(t, err)
}

func TestEncodeRefuses(t *testing.T) {
	for _, g := range []*stepup.SavedGrant{nil, {}, {Token: &oauth2.Token{RefreshToken: "r"}}} {
		_, err := Codec{}.Encode(testKey, g)
		require.Error(t, err)
	}
	big := testGrant()
	big.Token.AccessToken = strings.Repeat("a", MaxSize)
	_, err := Codec{}.Encode(testKey, big)
	require.ErrorContains(t, err, "over the")
	require.NotContains(t, err.Error(), "aaaa")
}

func TestIDsDiffer(t *testing.T) {
	ids := map[string]bool{}
	for _, k := range []stepup.StoreKey{
		{}, {Resource: "ab"}, {Resource: "a", Issuer: "b"}, {Issuer: "ab"}, {Resource: "ab", Issuer: ""},
	} {
		ids[ID(k)] = true
		require.Regexp(t, `^[0-9a-f]{64}$`, ID(k))
	}
	require.Len(t, ids, 4) // the last key is the second
}

func requireCorrupt(t *testing.T, err error) {
	t.Helper()
	require.ErrorIs(t, err, ErrCorrupt)
	require.NotContains(t, err.Error(), "secret")
}

// FuzzDecode: any bytes give a grant with an access token or ErrCorrupt,
// never a panic, and no error quotes the record.
func FuzzDecode(f *testing.F) {
	clear, _ := Codec{}.Encode(testKey, testGrant())
	sealedCodec := Codec{AEAD: newAEAD(f, 'k')}
	sealed, _ := sealedCodec.Encode(testKey, testGrant())
	f.Add(clear)
	f.Add(sealed)
	f.Add([]byte(`{"v":1}`))
	f.Add([]byte(`{"v":1,"sealed":""}`))
	f.Add([]byte(`{"v":1,"resource":"https://mcp.example.com/mcp","issuer":"https://as.example.com","grant":{"token":{"access_token":"x"}}}`))
	f.Fuzz(func(t *testing.T, rec []byte) {
		for _, c := range []Codec{{}, sealedCodec} {
			g, err := c.Decode(testKey, rec)
			if err != nil {
				require.ErrorIs(t, err, ErrCorrupt)
				if len(rec) >= 8 {
					require.NotContains(t, err.Error(), string(rec))
				}
				continue
			}
			require.NotEmpty(t, g.Token.AccessToken)
		}
	})
}

// The DPoP key saved with a grant comes back as it went, and is sealed
// like the tokens.
func TestDPoPKey(t *testing.T) {
	key, err := dpop.GenerateKey()
	require.NoError(t, err)
	jwk, err := key.MarshalPrivateJWK()
	require.NoError(t, err)
	var priv struct{ D string }
	require.NoError(t, json.Unmarshal(jwk, &priv))
	for name, c := range map[string]Codec{"clear": {}, "sealed": {AEAD: newAEAD(t, 'k')}} {
		t.Run(name, func(t *testing.T) {
			g := testGrant()
			g.Token.TokenType = "DPoP"
			g.DPoPKey = jwk
			rec, err := c.Encode(testKey, g)
			require.NoError(t, err)
			if c.AEAD != nil {
				require.NotContains(t, string(rec), priv.D)
			}
			back, err := c.Decode(testKey, rec)
			require.NoError(t, err)
			k, err := dpop.ParsePrivateJWK(back.DPoPKey)
			require.NoError(t, err)
			require.Equal(t, key.Thumbprint(), k.Thumbprint())
		})
	}
}
