package realservers_test

import (
	"fmt"
	"strings"
	"sync"

	"github.com/stepup-go/stepup/examples/internal/realserver"
)

// results are the outcomes of a run, for the table.
var results = &table{names: map[string]string{}, features: map[string]realserver.Features{}, cells: map[[2]string]string{}}

// table is the servers × scenarios outcomes of a run.
type table struct {
	mu       sync.Mutex
	names    map[string]string              // server → its name and version
	features map[string]realserver.Features // server → what it supports
	cells    map[[2]string]string           // (server, scenario) → outcome
}

func (t *table) server(server string, s *realserver.Server) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.names[server] = s.Name
	t.features[server] = s.Features
}

func (t *table) set(server, scenario, outcome string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.cells[[2]string{server, scenario}] = outcome
}

// markdown renders the table, in the order of servers and scenarios,
// with nothing of the machine it ran on.
func (t *table) markdown() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	var b strings.Builder
	b.WriteString(`# stepup against real authorization servers

Written by the scenario suite in examples/realservers (do not edit by hand):

    go test ./examples/realservers -args -table ../../docs/real-servers.md

Each scenario runs on a fresh server started on loopback, with the go-sdk's
MCP client over a stepup.Transport and an authcode.Escalator whose
loopback receiver the server's scripted person answers; the counts it
asserts are the requests the server's endpoints received. "not supported
by the server" means the server lacks what the scenario needs. In (d) the
client holds its access token altered, which every server's resource
server refuses (a JWT's signature fails, introspection knows no such
token), as it would a revoked one; the refresh that follows is real.

`)
	t.header(&b, "scenario")
	for _, sc := range scenarios {
		fmt.Fprintf(&b, "| (%s) %s |", sc.id, sc.title)
		for _, s := range servers {
			out := t.cells[[2]string{s.name, sc.id}]
			if out == "" {
				out = "not run"
			}
			fmt.Fprintf(&b, " %s |", out)
		}
		b.WriteString("\n")
	}
	b.WriteString("\nWhat each server supports, as the suite configures it:\n\n")
	t.header(&b, "feature")
	for _, f := range featureRows {
		fmt.Fprintf(&b, "| %s |", f.name)
		for _, s := range servers {
			mark := "no"
			if f.has(t.features[s.name]) {
				mark = "yes"
			}
			fmt.Fprintf(&b, " %s |", mark)
		}
		b.WriteString("\n")
	}
	return b.String()
}

// header writes a table's header: the first column's label, then a
// column per server.
func (t *table) header(b *strings.Builder, first string) {
	fmt.Fprintf(b, "| %s |", first)
	for _, s := range servers {
		fmt.Fprintf(b, " %s |", t.names[s.name])
	}
	b.WriteString("\n|---|")
	for range servers {
		b.WriteString("---|")
	}
	b.WriteString("\n")
}

// featureRows are the rows of the features table.
var featureRows = []struct {
	name string
	has  func(realserver.Features) bool
}{
	{"dynamic client registration (RFC 7591)", func(f realserver.Features) bool { return f.DynamicRegistration }},
	{"resource indicators (RFC 8707)", func(f realserver.Features) bool { return f.ResourceIndicators }},
	{"rotated refresh tokens, reuse revoking the grant", func(f realserver.Features) bool { return f.RefreshRotation }},
	{"a consent page that may be declined", func(f realserver.Features) bool { return f.Consent }},
	{"partial consent", func(f realserver.Features) bool { return f.PartialConsent }},
	{"step-up authentication (RFC 9470 acr_values, max_age)", func(f realserver.Features) bool { return f.StepUpAuthn }},
	{"token revocation (RFC 7009)", func(f realserver.Features) bool { return f.Revocation }},
}
