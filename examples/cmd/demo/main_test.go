package main

import (
	"strings"
	"testing"
)

// The demo is the seed scenario: 403 insufficient_scope is answered by the
// Escalator with the union of scopes, and no refresh is ever sent (RFC 6749 §6).
func TestDemo(t *testing.T) {
	var out strings.Builder
	if err := run(&out); err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	for _, want := range []string{
		`Escalator: insufficient scope, asking for "tools:read tools:custom" (challenged "tools:custom")`,
		"Result: 200 OK tool /tools/custom ran",
		"Refresh requests sent: 0",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}
