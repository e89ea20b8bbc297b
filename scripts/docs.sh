#!/usr/bin/env bash
# Writes the program outputs the docs quote, from the commands that print
# them, so that no figure in them is typed in by hand; with --check, tells
# whether the committed docs are current.
#
# Usage: scripts/docs.sh [--check] [FILE...]
#        (default: README.md and docs/*.md; paths from the repository root)
#
# In FILE, each block
#
#   <!-- output text: COMMAND -->
#   ...
#   <!-- end output -->
#
# is replaced by what COMMAND prints on standard output, in a ```text fence;
# with `output markdown:` it is pasted as it is (a table, say). COMMAND runs
# with bash from the repository root. A block whose output is not the same
# from run to run (timings) says so: `output markdown, varies:`.
#
# --check regenerates every block that does not vary into a temporary copy
# and compares: it prints the difference and fails when a doc is not what
# its commands print today, and leaves the files as they are.
#
# Any command failing stops the script and leaves FILE as it was.
set -euo pipefail
shopt -s inherit_errexit
cd "$(dirname "${BASH_SOURCE[0]}")/.."

check=false
if [ "${1:-}" = --check ]; then
	check=true
	shift
fi
[ $# -gt 0 ] || set -- README.md docs/*.md

tmpdir=$(mktemp -d)
trap 'rm -rf "$tmpdir"' EXIT

begin_re='^<!-- output (text|markdown)(, varies)?: (.*) -->$'

# render FILE OUT: FILE with its blocks regenerated, into OUT. In check
# mode a block that varies is copied as it is.
render() {
	local file=$1 dst=$2 skipping=false keep=false line kind varies cmd out
	: >"$dst"
	while IFS= read -r line || [ -n "$line" ]; do
		if $skipping; then
			if [ "$line" = "<!-- end output -->" ]; then
				printf '%s\n' "$line" >>"$dst"
				skipping=false
			elif $keep; then
				printf '%s\n' "$line" >>"$dst"
			fi
			continue
		fi
		printf '%s\n' "$line" >>"$dst"
		[[ $line =~ $begin_re ]] || continue
		kind=${BASH_REMATCH[1]} varies=${BASH_REMATCH[2]} cmd=${BASH_REMATCH[3]}
		skipping=true keep=false
		if $check && [ -n "$varies" ]; then
			keep=true
			continue
		fi
		printf 'docs.sh: %s: %s\n' "$file" "$cmd" >&2
		out=$(bash -eo pipefail -c "$cmd")
		if [ "$kind" = text ]; then
			printf '```text\n%s\n```\n' "$out" >>"$dst"
		else
			printf '%s\n' "$out" >>"$dst"
		fi
	done <"$file"
	if $skipping; then
		printf 'docs.sh: %s: an output block has no <!-- end output -->\n' "$file" >&2
		return 1
	fi
}

stale=0
for file in "$@"; do
	dst=$tmpdir/$(printf '%s' "$file" | tr / _)
	render "$file" "$dst"
	if $check; then
		if ! diff -u --label "$file (committed)" --label "$file (as its commands print it now)" "$file" "$dst"; then
			stale=1
		fi
	else
		cat "$dst" >"$file"
	fi
done
if [ "$stale" -ne 0 ]; then
	echo "docs.sh: the docs above are not current: run scripts/docs.sh and commit the result" >&2
	exit 1
fi
