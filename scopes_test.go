package stepup

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseScopes(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    Scopes
		wantErr bool
	}{
		{"", nil, false},
		{"   ", nil, false},
		{"a", Scopes{"a"}, false},
		{"b a", Scopes{"b", "a"}, false},             // order kept, carries no meaning (RFC 6750 §3)
		{"  a  b a ", Scopes{"a", "b"}, false},       // duplicates and extra spaces dropped
		{"Read read", Scopes{"Read", "read"}, false}, // case-sensitive (RFC 6749 §3.3)
		{"files:read mcp:*", Scopes{"files:read", "mcp:*"}, false},
		{"a\tb", nil, true}, // HTAB is not a delimiter nor a scope char
		{`a"b`, nil, true},  // RFC 6750 §3
		{`a\b`, nil, true},
		{"a\x7fb", nil, true},
		{"caf\u00e9", nil, true},
	} {
		t.Run(fmt.Sprintf("%q", tc.in), func(t *testing.T) {
			got, err := ParseScopes(tc.in)
			if tc.wantErr {
				assert.ErrorIs(t, err, ErrMalformedChallenge)
				var pe *ParamError
				assert.ErrorAs(t, err, &pe)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
		})
	}
}

func TestScopesSetOperations(t *testing.T) {
	a := Scopes{"files:read", "profile"}
	b := Scopes{"files:write", "files:read"}

	u := a.Union(b, nil, Scopes{"admin", "profile"})
	assert.Equal(t, Scopes{"files:read", "profile", "files:write", "admin"}, u) // MCP authorization, "Step-Up Authorization Flow": stable, no duplicates
	assert.Equal(t, Scopes{"files:read", "profile"}, a, "Union must not modify its receiver")
	assert.Equal(t, Scopes{}, Scopes(nil).Union())
	assert.Equal(t, Scopes{"x"}, Scopes{"x", "x"}.Union(), "Union deduplicates the receiver too")

	assert.True(t, a.Contains("profile"))
	assert.False(t, a.Contains("Profile"))
	assert.True(t, u.ContainsAll(a))
	assert.False(t, a.ContainsAll(b))
	assert.True(t, a.ContainsAll(nil))

	assert.True(t, Scopes{"b", "a"}.Equal(Scopes{"a", "b"}))
	assert.False(t, Scopes{"a", "b"}.Equal(Scopes{"a"}))
	assert.False(t, Scopes{"a", "a"}.Equal(Scopes{"a", "b"}))
	assert.True(t, Scopes(nil).Equal(Scopes{}))

	assert.Equal(t, "files:read profile", a.String())
	assert.Equal(t, "", Scopes(nil).String())

	assert.Equal(t, "a b c", Scopes{"c", "a", "b", "a"}.sortedKey())
	assert.Equal(t, Scopes{"c", "a", "b", "a"}, Scopes{"c", "a", "b", "a"}, "sortedKey must not sort in place")
}
