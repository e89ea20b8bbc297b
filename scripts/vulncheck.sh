#!/usr/bin/env bash
# Runs govulncheck on every module of the workspace against the database
# scripts/vulndb.sh builds from the module proxy, and fails on a
# vulnerability the code calls unless .ci/govulncheck-accepted lists it
# with its reason. Prints each one the code calls.
#
# The standard library's findings are those of the go command that runs
# this; CI pins a current patch release with GOTOOLCHAIN.
set -euo pipefail
shopt -s inherit_errexit
cd "$(dirname "${BASH_SOURCE[0]}")/.."

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
GOWORK=off go -C tools build -o "$tmp/" golang.org/x/vuln/cmd/govulncheck
db=$(scripts/vulndb.sh)

"$tmp/govulncheck" -db "file://$db" -format json work >"$tmp/report.json"

# The vulnerabilities whose vulnerable functions the code calls: a
# finding whose trace starts at a function, not at a package or module
# (trace[0] is the vulnerable function, trace[-1] the caller here).
jq -r 'select(.finding and .finding.trace[0].function) | .finding.osv' "$tmp/report.json" | sort -u >"$tmp/called"
jq -r --slurp '
	(map(select(.osv)) | map({(.osv.id): .osv.summary}) | add // {}) as $summary
	| map(select(.finding and .finding.trace[0].function) | .finding)
	| group_by(.osv)[]
	| "\(.[0].osv) in \(.[0].trace[0].module)@\(.[0].trace[0].version // "?") (fixed: \(.[0].fixed_version // "none")): \($summary[.[0].osv])\n    called from \(map(.trace[-1].package + "." + .trace[-1].function) | unique | .[:3] | join(", "))"
' "$tmp/report.json"
grep -Eo '^GO-[0-9]{4}-[0-9]+' .ci/govulncheck-accepted | sort -u >"$tmp/accepted"
unaccepted=$(comm -23 "$tmp/called" "$tmp/accepted")
if [ -n "$unaccepted" ]; then
	printf 'vulncheck.sh: the code calls vulnerable functions (see above):\n%s\n' "$unaccepted" >&2
	exit 1
fi
stale=$(comm -13 "$tmp/called" "$tmp/accepted")
if [ -n "$stale" ]; then
	printf 'vulncheck.sh: accepted but no longer reported, remove from .ci/govulncheck-accepted:\n%s\n' "$stale" >&2
	exit 1
fi
printf 'vulncheck.sh: %d vulnerabilities called, each accepted in .ci/govulncheck-accepted\n' "$(wc -l <"$tmp/called")"
