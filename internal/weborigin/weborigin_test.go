package weborigin

import (
	"net/url"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestSame(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		same bool
	}{
		{"https://x.example/mcp", "https://x.example/other?q=1", true},
		{"https://x.example/mcp", "HTTPS://X.EXAMPLE:443/", true},
		{"http://127.0.0.1:80/a", "http://127.0.0.1/b", true},
		{"https://x.example/mcp", "http://x.example/mcp", false},
		{"https://x.example/mcp", "https://x.example:8443/mcp", false},
		{"https://x.example/mcp", "https://y.x.example/mcp", false},
		{"https://x.example/mcp", "https://x.example.evil/mcp", false},
		{"http://[::1]:8080/", "http://[::1]:8080/x", true},
		// The absolute name is another host as far as origins go (RFC
		// 6454 §5 compares hosts as written; browsers agree).
		{"https://x.example/mcp", "https://x.example./mcp", false},
		{"https://x.example./mcp", "https://X.EXAMPLE./prm", true},
		{"http://127.0.0.1/", "http://127.0.0.1./", false},
		{"https://x.example/", "ftp://x.example/", false},
	} {
		ua, err := url.Parse(tc.a)
		require.NoError(t, err)
		ub, err := url.Parse(tc.b)
		require.NoError(t, err)
		assert.Equal(t, tc.same, Same(ua, ub), "%s vs %s", tc.a, tc.b)
		assert.Equal(t, tc.same, Same(ub, ua), "%s vs %s", tc.b, tc.a)
	}
	assert.False(t, Origin{Scheme: "https", Host: "x", Port: "443"}.Matches(nil))
	assert.False(t, Same(&url.URL{Path: "/relative"}, &url.URL{Path: "/relative"}))
}

func TestString(t *testing.T) {
	assert.Equal(t, "https://x.example", Origin{"https", "x.example", "443"}.String())
	assert.Equal(t, "https://x.example:8443", Origin{"https", "x.example", "8443"}.String())
	assert.Equal(t, "http://[::1]:8080", Origin{"http", "::1", "8080"}.String())
}
