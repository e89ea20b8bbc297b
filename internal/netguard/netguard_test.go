package netguard

import (
	"errors"
	"net/netip"
	"net/url"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestPolicyCheckURL(t *testing.T) {
	strict := Policy{}
	local := Policy{Loopback: true}
	open := Policy{Loopback: true, Private: true, LinkLocal: true}
	for _, tc := range []struct {
		url                   string
		strict, local, opened bool // allowed under each policy
	}{
		{"https://as.example.com/token", true, true, true},
		{"http://as.example.com/token", false, false, false}, // RFC 6749 §3.2: TLS
		{"ftp://as.example.com/", false, false, false},
		{"javascript:alert(1)", false, false, false},
		{"https://user:pw@as.example.com/", false, false, false},
		{"http://127.0.0.1:8080/", false, true, true},
		{"http://127.9.9.9/", false, true, true},
		{"http://[::1]:80/", false, true, true},
		{"http://localhost:3000/", false, true, true},
		{"http://LOCALHOST./", false, true, true},
		{"http://as.localhost/", false, true, true},
		{"https://10.0.0.1/", false, false, true},
		{"https://172.16.5.4/", false, false, true},
		{"https://192.168.1.1/", false, false, true},
		{"https://100.100.100.200/", false, false, true}, // RFC 6598: a cloud's metadata service
		{"https://[fd00::1]/", false, false, true},
		{"http://10.0.0.1/", false, false, false}, // private is allowed, plain http is not
		{"https://169.254.169.254/latest/meta-data", false, false, true},
		{"http://169.254.169.254/latest/meta-data", false, false, false},
		{"https://[fe80::1]/", false, false, true},
		{"https://[::ffff:169.254.169.254]/", false, false, true}, // IPv4-mapped
		{"https://[64:ff9b::a9fe:a9fe]/", false, false, true},     // NAT64 of 169.254.169.254
		{"https://[2002:a9fe:a9fe::]/", false, false, true},       // 6to4 of 169.254.169.254
		{"https://[::a00:1]/", false, false, true},                // IPv4-compatible 10.0.0.1
		{"https://0.0.0.0/", false, false, false},
		{"https://0.1.2.3/", false, false, false},
		{"https://[::]/", false, false, false},
		{"https://224.0.0.1/", false, false, false},
		{"https://255.255.255.255/", false, false, false},
		{"https://[ff02::1]/", false, false, false},
		{"https://2130706433/", false, false, false},    // 127.0.0.1 as inet_aton reads it
		{"https://0x7f.1/", false, false, false},        // the same
		{"https://169.254.43518/", false, false, false}, // 169.254.169.254
		{"https://8.8.8.8/", true, true, true},
	} {
		u, err := url.Parse(tc.url)
		require.NoError(t, err)
		for _, pc := range []struct {
			name string
			p    Policy
			want bool
		}{{"strict", strict, tc.strict}, {"loopback", local, tc.local}, {"open", open, tc.opened}} {
			err := pc.p.CheckURL(u)
			if pc.want {
				assert.NoError(t, err, "%s under %s", tc.url, pc.name)
			} else if assert.Error(t, err, "%s under %s", tc.url, pc.name) {
				assert.True(t, errors.Is(err, ErrRefused), "%s under %s: %v", tc.url, pc.name, err)
			}
		}
	}
}

func TestPolicyControlChecksResolvedAddress(t *testing.T) {
	p := Policy{Loopback: true}
	assert.NoError(t, p.Control("tcp4", "127.0.0.1:443", nil))
	for _, addr := range []string{"10.1.2.3:443", "169.254.169.254:80", "[fe80::1%eth0]:443", "[::ffff:10.0.0.1]:443", "0.0.0.0:80", "not-an-address:80"} {
		err := p.Control("tcp", addr, nil)
		assert.ErrorIs(t, err, ErrRefused, addr)
	}
	assert.NoError(t, Policy{Private: true}.Control("tcp", "10.1.2.3:443", nil))
	assert.NoError(t, Policy{LinkLocal: true}.Control("tcp", "169.254.169.254:80", nil))
}

func TestCheckAddrInvalid(t *testing.T) {
	assert.ErrorIs(t, Policy{}.CheckAddr(netip.Addr{}), ErrRefused)
}

func TestIsLoopbackHost(t *testing.T) {
	for host, want := range map[string]bool{
		"localhost": true, "LOCALHOST.": true, "app.localhost": true, "127.0.0.1": true, "127.9.9.9": true, "::1": true,
		"localhost.example": false, "10.0.0.1": false, "example.com": false, "": false,
	} {
		assert.Equal(t, want, IsLoopbackHost(host), host)
	}
}
