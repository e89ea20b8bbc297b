#!/usr/bin/env bash
# Regenerates the program outputs a README quotes, from the commands that
# print them, so that no number in it is typed in by hand.
#
# Usage: scripts/readme-outputs.sh [FILE...]   (default: README.md;
#        paths are taken from the repository root)
#
# In FILE, each block
#
#   <!-- output text: COMMAND -->
#   ...
#   <!-- end output -->
#
# is replaced by what COMMAND prints on standard output, in a ```text fence;
# with `output markdown:` it is pasted as it is (a table, say). COMMAND runs
# with bash from the repository root. Any command failing stops the script
# and leaves FILE as it was.
set -euo pipefail
shopt -s inherit_errexit
cd "$(dirname "${BASH_SOURCE[0]}")/.."

[ $# -gt 0 ] || set -- README.md

begin_re='^<!-- output (text|markdown): (.*) -->$'
for file in "$@"; do
	tmp=$(mktemp)
	trap 'rm -f "$tmp"' EXIT
	skipping=false
	while IFS= read -r line || [ -n "$line" ]; do
		if $skipping; then
			if [ "$line" = "<!-- end output -->" ]; then
				printf '%s\n' "$line" >>"$tmp"
				skipping=false
			fi
			continue
		fi
		printf '%s\n' "$line" >>"$tmp"
		if [[ $line =~ $begin_re ]]; then
			kind=${BASH_REMATCH[1]} cmd=${BASH_REMATCH[2]}
			printf 'readme-outputs.sh: %s\n' "$cmd" >&2
			out=$(bash -eo pipefail -c "$cmd")
			if [ "$kind" = text ]; then
				printf '```text\n%s\n```\n' "$out" >>"$tmp"
			else
				printf '%s\n' "$out" >>"$tmp"
			fi
			skipping=true
		fi
	done <"$file"
	if $skipping; then
		printf 'readme-outputs.sh: %s: an output block has no <!-- end output -->\n' "$file" >&2
		exit 1
	fi
	cat "$tmp" >"$file"
	rm -f "$tmp"
done
