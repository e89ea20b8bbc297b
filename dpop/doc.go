// Package dpop sends DPoP proofs (RFC 9449), which bind tokens to a key the
// client holds, so that a token that leaks is useless without the key.
//
// A [Key] signs proofs (RFC 9449 §4) and names itself by its JWK
// thumbprint (RFC 7638), the dpop_jkt of an authorization request (RFC
// 9449 §10). [Nonces] keeps the nonce each server gave (RFC 9449 §8, §9).
// A [Transport] adds a proof to token requests and answers a token
// endpoint's use_dpop_nonce once. The stepup Transport uses them to send
// DPoP-bound tokens to the resource with a fresh proof on every request;
// see stepup.WithDPoP.
package dpop
