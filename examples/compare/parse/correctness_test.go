package parse

import (
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
)

// verdict is one cell of the correctness table.
type verdict struct {
	ok  bool
	why string // what was wrong, when !ok
}

// judge compares what a library returned for in with in.want.
func judge(in input, got []challenge, err error) verdict {
	var problems []string
	if err != nil && len(in.want.find) > 0 {
		return verdict{why: "returned no challenges: " + err.Error()}
	}
	for _, w := range in.want.find {
		var hits []challenge
		for _, c := range got {
			if c.usable && c.scheme == w.scheme {
				hits = append(hits, c)
			}
		}
		switch len(hits) {
		case 0:
			problems = append(problems, "no usable "+w.scheme+" challenge")
			continue
		case 1:
		default:
			problems = append(problems, fmt.Sprintf("%d usable %s challenges", len(hits), w.scheme))
			continue
		}
		if d := diffParams(hits[0].params, w.params); d != "" {
			problems = append(problems, w.scheme+": "+d)
		}
		if hits[0].token68 != w.token68 {
			problems = append(problems, fmt.Sprintf("%s: token68 %q, want %q", w.scheme, hits[0].token68, w.token68))
		}
	}
	for _, scheme := range in.want.reject {
		for _, c := range got {
			if c.usable && c.scheme == scheme {
				problems = append(problems, fmt.Sprintf("malformed %s challenge returned as usable %s", scheme, fmtParams(c.params)))
				break
			}
		}
	}
	if len(problems) > 0 {
		return verdict{why: strings.Join(problems, "; ")}
	}
	return verdict{ok: true}
}

// diffParams describes how got differs from want, or returns "".
func diffParams(got, want map[string]string) string {
	var d []string
	for _, k := range slices.Sorted(maps.Keys(want)) {
		if v, ok := got[k]; !ok {
			d = append(d, k+" missing")
		} else if v != want[k] {
			d = append(d, fmt.Sprintf("%s=%q, want %q", k, v, want[k]))
		}
	}
	for _, k := range slices.Sorted(maps.Keys(got)) {
		if _, ok := want[k]; !ok {
			d = append(d, fmt.Sprintf("unexpected %q=%q", k, got[k]))
		}
	}
	return strings.Join(d, ", ")
}

func fmtParams(p map[string]string) string {
	var b strings.Builder
	b.WriteByte('{')
	for i, k := range slices.Sorted(maps.Keys(p)) {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s=%q", k, p[k])
	}
	b.WriteByte('}')
	return b.String()
}

// TestParseCorrectness judges every library on every input of tableInputs.
// Only stepup's verdicts are asserted: the peers' are what the table reports.
// The table is printed with -v or when STEPUP_TABLE is non-empty.
func TestParseCorrectness(t *testing.T) {
	results := make([][]verdict, len(tableInputs)) // [input][library]
	for i, in := range tableInputs {
		status := in.status
		if status == 0 {
			status = http.StatusUnauthorized
		}
		results[i] = make([]verdict, len(libraries))
		for j, lib := range libraries {
			got, err := lib.parse(status, in.header())
			v := judge(in, got, err)
			results[i][j] = v
			if lib.name == "stepup" && !v.ok {
				t.Errorf("stepup on %s (%s): %s", in.name, strings.Join(in.lines, " | "), v.why)
			}
		}
	}
	if testing.Verbose() || os.Getenv("STEPUP_TABLE") != "" {
		// Straight to stdout rather than t.Log, which would indent the
		// markdown; the markers let scripts/bench.sh cut it out.
		fmt.Println("<!-- correctness-table -->")
		writeTable(os.Stdout, results)
		fmt.Println("<!-- /correctness-table -->")
	}
}

// writeTable prints results as markdown: the ✓/✗ grid, what each ✗ was, and
// the inputs themselves, so the table can be checked by hand.
func writeTable(w io.Writer, results [][]verdict) {
	fmt.Fprint(w, "| input |")
	for _, lib := range libraries {
		fmt.Fprintf(w, " %s |", lib.name)
	}
	fmt.Fprint(w, "\n|---|")
	for range libraries {
		fmt.Fprint(w, ":---:|")
	}
	fmt.Fprintln(w)
	correct := make([]int, len(libraries))
	for i, in := range tableInputs {
		fmt.Fprintf(w, "| %s |", in.name)
		for j, v := range results[i] {
			mark := "✗"
			if v.ok {
				mark = "✓"
				correct[j]++
			}
			fmt.Fprintf(w, " %s |", mark)
		}
		fmt.Fprintln(w)
	}
	fmt.Fprint(w, "| **correct** |")
	for j := range libraries {
		fmt.Fprintf(w, " **%d/%d** |", correct[j], len(tableInputs))
	}
	fmt.Fprintln(w)

	fmt.Fprintln(w, "\nWhy each ✗:")
	fmt.Fprintln(w)
	for i, in := range tableInputs {
		for j, v := range results[i] {
			if !v.ok {
				fmt.Fprintf(w, "- %s, %s: %s\n", libraries[j].name, in.name, v.why)
			}
		}
	}

	fmt.Fprintln(w, "\nInputs (one WWW-Authenticate field line per code span; distribution gets them on a 401 unless noted) and the verdict rule (expected values written as Go string literals):")
	fmt.Fprintln(w)
	for _, in := range tableInputs {
		var lines []string
		for _, l := range in.lines {
			lines = append(lines, "`"+l+"`")
		}
		fmt.Fprintf(w, "- %s: %s", in.name, strings.Join(lines, " + "))
		if in.status != 0 {
			fmt.Fprintf(w, " on a %d", in.status)
		}
		fmt.Fprintf(w, " → %s\n", describe(in.want))
	}
}

// describe says in words what in.want asks of a library.
func describe(w want) string {
	var parts []string
	for _, c := range w.find {
		parts = append(parts, fmt.Sprintf("exactly one usable %s challenge with exactly %s", c.scheme, fmtParams(c.params)))
	}
	for _, s := range w.reject {
		parts = append(parts, "no usable "+s+" challenge (malformed)")
	}
	return strings.Join(parts, "; ")
}

// TestJudge guards the table against a judge that passes everything.
func TestJudge(t *testing.T) {
	bearer := func(params map[string]string, usable bool) challenge {
		return challenge{scheme: "bearer", params: params, usable: usable}
	}
	want := expired401.want.find[0].params
	for _, tc := range []struct {
		name string
		in   input
		got  []challenge
		ok   bool
	}{
		{"exact", expired401, []challenge{bearer(want, true)}, true},
		{"nothing", expired401, nil, false},
		{"flagged malformed", expired401, []challenge{bearer(want, false)}, false},
		{"param missing", expired401, []challenge{bearer(map[string]string{"realm": "example"}, true)}, false},
		{"extra param", expired401, []challenge{bearer(map[string]string{"realm": "example", "error": "invalid_token", "error_description": "The access token expired", "scope": "a"}, true)}, false},
		{"twice", expired401, []challenge{bearer(want, true), bearer(want, true)}, false},
		{"malformed rejected", tableInputs[slices.IndexFunc(tableInputs, func(in input) bool { return in.name == "duplicate-scope" })], []challenge{bearer(map[string]string{"scope": "a"}, false)}, true},
		{"malformed used", tableInputs[slices.IndexFunc(tableInputs, func(in input) bool { return in.name == "duplicate-scope" })], []challenge{bearer(map[string]string{"scope": "b"}, true)}, false},
	} {
		if v := judge(tc.in, tc.got, nil); v.ok != tc.ok {
			t.Errorf("%s: judge says ok=%v (%s), want %v", tc.name, v.ok, v.why, tc.ok)
		}
	}
}
