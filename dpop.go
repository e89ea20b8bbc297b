package stepup

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"golang.org/x/oauth2"

	"github.com/stepup-go/stepup/dpop"
)

// WithDPoP binds the source's tokens to k (RFC 9449): every token request
// the source makes (refresh) and every token request of an Escalator that
// honours [EscalationRequest.DPoP] (the authcode Escalator does) carries a
// DPoP proof signed by k, and a token that comes back with token_type DPoP
// is sent to the resource as "Authorization: DPoP <token>" with a fresh
// proof on every request and every replay, to the resource's origin only.
// The nonces the servers demand (use_dpop_nonce, RFC 9449 §8, §9) are kept
// per server and renewed from every DPoP-Nonce response field; a demand is
// answered with one replay, which counts toward the guard like any other
// remedy.
//
// DPoP is used only when asked for: a server that does not list
// dpop_signing_alg_values_supported (RFC 9449 §5.1) still gets the proof,
// which RFC 9449 §5 lets it ignore, and a token it issues as Bearer is
// sent as Bearer. With a [Store], k is saved with the grant (sealed with
// it when the store seals) and a saved key replaces k when the saved grant
// is taken, so that a restart does not orphan the tokens bound to it; a key
// that cannot be exported (a KMS key) is the caller's to keep. A nil k
// leaves DPoP off.
func WithDPoP(k *dpop.Key) TokenSourceOption {
	return func(s *TokenSource) {
		if k != nil {
			s.dpop = dpop.NewConfig(k)
		}
	}
}

// dpopBound reports whether tok is a DPoP-bound token (RFC 9449 §5,
// token_type DPoP, case-insensitive as RFC 6749 §5.1 says).
func dpopBound(tok *oauth2.Token) bool { return strings.EqualFold(tok.TokenType, dpop.Scheme) }

// dpopConfig returns the source's DPoP configuration, or nil.
func (s *TokenSource) dpopConfig() *dpop.Config {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.dpop
}

// withDPoP returns ctx carrying the source's DPoP configuration, if any,
// for the token requests of a refresh.
func (s *TokenSource) withDPoP(ctx context.Context) context.Context {
	if c := s.dpopConfig(); c != nil {
		return dpop.NewContext(ctx, c)
	}
	return ctx
}

// savedDPoPKeyLocked is the key the store keeps with tok: nil when tok is
// not bound by the source's key or the key cannot leave where it lives.
func (s *TokenSource) savedDPoPKeyLocked(tok *oauth2.Token) json.RawMessage {
	if s.dpop == nil || tok == nil || !dpopBound(tok) {
		return nil
	}
	b, err := s.dpop.Key.MarshalPrivateJWK()
	if err != nil {
		return nil
	}
	return b
}

// adoptDPoPKeyLocked makes the key saved with a grant the source's: the
// tokens of that grant are bound to it. A key that does not parse leaves
// the source's key, and the saved tokens then draw a refusal and a new
// authorization.
func (s *TokenSource) adoptDPoPKeyLocked(saved json.RawMessage) {
	if s.dpop == nil || len(saved) == 0 {
		return
	}
	k, err := dpop.ParsePrivateJWK(saved)
	if err != nil || k.Thumbprint() == s.dpop.Key.Thumbprint() {
		return
	}
	s.dpop = &dpop.Config{Key: k, Nonces: s.dpop.Nonces}
}

// dpopProve adds to h, the header of r2 being sent with the bound token
// tok, a fresh proof of r2's method and URI with tok's hash and the
// resource's nonce (RFC 9449 §7.1).
func dpopProve(c *dpop.Config, r2 *http.Request, h http.Header, tok string) error {
	proof, err := c.Key.Proof(r2.Method, dpop.HTU(r2.URL), tok, c.Nonces.Get(r2.URL))
	if err != nil {
		return fmt.Errorf("stepup: %w", err)
	}
	h["Dpop"] = []string{proof}
	return nil
}
