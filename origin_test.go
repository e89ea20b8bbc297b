package stepup

import (
	"testing"

	"github.com/stepup-go/stepup/internal/weborigin"
	"github.com/stretchr/testify/assert"
)

// resource_metadata is handed on only when it is safe to fetch (RFC 9728
// §7.7, RFC 9728 §7.7, MCP security best practices, SSRF).
func TestValidateResourceMetadata(t *testing.T) {
	public := weborigin.Origin{Scheme: "https", Host: "mcp.example.com", Port: "443"}
	local := weborigin.Origin{Scheme: "http", Host: "127.0.0.1", Port: "8080"}
	private := weborigin.Origin{Scheme: "https", Host: "10.1.2.3", Port: "443"}
	for _, tc := range []struct {
		raw   string
		res   weborigin.Origin
		cross bool
		ok    bool
	}{
		{"", public, false, false},
		{"https://mcp.example.com/.well-known/oauth-protected-resource/mcp", public, false, true},
		{"https://MCP.example.com:443/.well-known/oauth-protected-resource", public, false, true},
		{"https://mcp.example.com:8443/prm", public, false, false},
		{"http://mcp.example.com/prm", public, true, false},
		{"https://auth.example.com/prm", public, false, false},
		{"https://auth.example.com/prm", public, true, true},
		{"https://user:pw@mcp.example.com/prm", public, false, false},
		{"https://mcp.example.com/prm#x", public, false, false},
		{"javascript:alert(1)", public, true, false},
		{"file:///etc/passwd", public, true, false},
		{"/relative", public, true, false},
		{"https://169.254.169.254/latest/meta-data", public, true, false},
		{"https://[fe80::1]/prm", public, true, false},
		{"https://10.0.0.1/prm", public, true, false},
		{"https://127.0.0.1/prm", public, true, false},
		{"http://localhost:9/prm", public, true, false},
		{"https://0.0.0.0/prm", public, true, false},
		{"http://127.0.0.1:8080/prm", local, false, true},
		{"http://127.0.0.1:9090/prm", local, true, true},
		{"http://localhost:9090/prm", local, true, true},
		{"https://10.1.2.4/prm", private, true, true},
		{"https://169.254.169.254/prm", private, true, false},
		{"http://[::1]:8080/prm", local, true, true},
		{"%zz", public, true, false},
		// IPv4 in inet_aton's shorthands is no name: refused whatever it
		// decodes to, and for every resource.
		{"https://0xa9fea9fe/prm", public, true, false},
		{"https://2852039166/prm", public, true, false},
		{"https://169.254.43518/prm", public, true, false},
		{"https://0251.0376.0251.0376/prm", public, true, false},
		{"https://127.1/prm", local, true, false},
		{"https://0x7f.1/prm", local, true, false},
		{"https://0X7F.0x/prm", public, true, false},
		{"https://0/prm", public, true, false},
		{"https://8.8.8.8.8/prm", public, true, false},
		{"https://cdn.example.123/prm", public, true, false},
		// A name that only starts with a number, or has hex in another
		// label, is a name.
		{"https://0xa9fea9fe.example/prm", public, true, true},
		{"https://123.example/prm", public, true, true},
		{"https://0xg/prm", public, true, true},
		// A trailing dot makes no other host of a name or an address.
		{"https://auth.example.com./prm", public, true, true},
		{"https://169.254.169.254./prm", public, true, false},
		{"https://10.0.0.1./prm", public, true, false},
		{"https://localhost./prm", public, true, false},
		{"https://app.LOCALHOST./prm", public, true, false},
		{"http://localhost.:9090/prm", local, true, true},
		{"http://127.0.0.1.:9090/prm", local, true, true},
	} {
		t.Run(tc.raw, func(t *testing.T) {
			got, why := validateResourceMetadata(tc.raw, tc.res, tc.cross)
			if tc.ok {
				assert.Equal(t, tc.raw, got)
				assert.Empty(t, why)
			} else {
				assert.Empty(t, got)
				if tc.raw != "" {
					assert.NotEmpty(t, why)
				}
			}
		})
	}
}
