package stepup

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestReasonString(t *testing.T) {
	for r, want := range map[Reason]string{
		ReasonAuthorizationRequired: "authorization required",
		ReasonReauthorization:       "re-authorization",
		ReasonInsufficientScope:     "insufficient scope",
		ReasonUserAuthentication:    "user authentication",
		ReasonClaims:                "claims",
		ReasonDPoPNonce:             "DPoP nonce",
		0:                           "Reason(0)",
		99:                          "Reason(99)",
	} {
		assert.Equal(t, want, r.String())
	}
}
