package realservers_test

import (
	"fmt"
	"strings"
	"sync"
)

// results are the outcomes of a run, for the table.
var results = &table{names: map[string]string{}, cells: map[[2]string]string{}}

// table is the servers × scenarios outcomes of a run.
type table struct {
	mu    sync.Mutex
	names map[string]string    // server → its name and version
	cells map[[2]string]string // (server, scenario) → outcome
}

func (t *table) name(server, name string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.names[server] = name
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
by the server" means the server lacks what the scenario needs.

`)
	b.WriteString("| scenario |")
	for _, s := range servers {
		fmt.Fprintf(&b, " %s |", t.names[s.name])
	}
	b.WriteString("\n|---|")
	for range servers {
		b.WriteString("---|")
	}
	b.WriteString("\n")
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
	return b.String()
}
