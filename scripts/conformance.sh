#!/usr/bin/env bash
# Runs the MCP conformance suite (npm @modelcontextprotocol/conformance)
# against stepup's conformance client, examples/cmd/conformance, and fails
# on any failed check, any warning, or any scenario whose client did not get
# through initialize, tools/list and tools/call (except the scenarios where
# the client is meant to fail).
#
# Usage: scripts/conformance.sh [--client go-sdk|mcp-go] [--judge PREFIX] [SUITE ARGS...]
#        scripts/conformance.sh list [LIST ARGS...]
#
#   SUITE ARGS go to `conformance client` as they are; the default is
#   `--suite auth`. Examples: `--scenario auth/scope-step-up --verbose`,
#   `--suite backcompat`, `--suite auth --spec-version 2026-07-28` (with
#   CONFORMANCE_VERSION=0.2.0-alpha.12).
#
#   --judge PREFIX judges only the scenarios whose name starts with PREFIX,
#   on their checks (a failure or a warning fails the run) and the client's
#   outcome; the others run and are reported, but the suite's own verdict,
#   which counts them, is not taken. For `--suite draft`, whose scenarios
#   other than auth/ judge the MCP SDKs (examples/cmd/conformance/README.md).
#
#   list shows the suite's scenarios (`conformance list`).
#
# Environment:
#   MCP_CLIENT           the MCP client SDK, go-sdk (default) or mcp-go;
#                        --client wins
#   CONFORMANCE_VERSION  the suite's npm version (default 0.1.16: versions
#                        differ in what they judge, so it is pinned)
#   CONFORMANCE_CACHE    where Node 22 and the suite are installed when
#                        missing (default ${XDG_CACHE_HOME:-~/.cache}/stepup-conformance)
#   CONFORMANCE_OUT      keep the results (checks.json, the client's output)
#                        in this directory; a temporary one is used and
#                        removed when unset
#   CONFORMANCE_NETNS    1 (default) runs the suite in a private network
#                        namespace with only loopback (needs root: the mock
#                        servers listen on all interfaces); 0 runs it as is
#
# Needs go, npm (any version: it only installs), and for the namespace
# unshare and ip. Node 22 comes from the npm registry as the `node` package.
set -euo pipefail
shopt -s inherit_errexit
cd "$(dirname "${BASH_SOURCE[0]}")/.."

CONFORMANCE_VERSION=${CONFORMANCE_VERSION:-0.1.16}
CACHE=${CONFORMANCE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/stepup-conformance}
CLIENT=${MCP_CLIENT:-go-sdk}

# Scenarios in which the client is expected to fail its calls: the suite
# sets allowClientError for them (the server refuses for good, or the
# client must refuse the authorization server's answer: RFC 9207 iss, an
# issuer that is not the one the metadata was fetched for).
ALLOWED_CLIENT_FAILURES=" auth/scope-retry-limit auth/resource-mismatch auth/iss-supported-missing auth/iss-wrong-issuer auth/iss-unexpected auth/iss-normalized auth/metadata-issuer-mismatch "

log() { printf 'conformance.sh: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

args=()
judge=
listing=false
if [ "${1:-}" = list ]; then
	listing=true
	shift
fi
while [ $# -gt 0 ] && ! $listing; do
	case $1 in
	--client) CLIENT=${2:?--client needs go-sdk or mcp-go}; shift 2 ;;
	--client=*) CLIENT=${1#--client=}; shift ;;
	--judge) judge=${2:?--judge needs a scenario name prefix}; shift 2 ;;
	--judge=*) judge=${1#--judge=}; shift ;;
	*) args+=("$1"); shift ;;
	esac
done
if [ ${#args[@]} -eq 0 ]; then
	args=(--suite auth)
fi
case $CLIENT in go-sdk | mcp-go) ;; *) die "unknown client $CLIENT (want go-sdk or mcp-go)" ;; esac

# install_node22: Node 22 as an npm package; the suite dies at start on
# Node 20 (no fs.globSync).
install_node22() {
	NODE=$CACHE/node22/node_modules/node/bin/node
	if [ -x "$NODE" ] && "$NODE" --version 2>/dev/null | grep -q '^v22\.'; then
		return
	fi
	command -v npm >/dev/null || die "npm is needed to install Node 22 (apt-get install npm)"
	log "installing Node 22 into $CACHE/node22"
	npm install --prefix "$CACHE/node22" --no-audit --no-fund --loglevel=error node@22 >&2
	"$NODE" --version | grep -q '^v22\.' || die "Node 22 did not install ($NODE)"
}

# install_suite: the pinned suite, one folder per version.
install_suite() {
	SUITE_DIR=$CACHE/suite-$CONFORMANCE_VERSION
	INDEX=$SUITE_DIR/node_modules/@modelcontextprotocol/conformance/dist/index.js
	if [ -f "$INDEX" ]; then
		return
	fi
	log "installing @modelcontextprotocol/conformance@$CONFORMANCE_VERSION into $SUITE_DIR"
	npm install --prefix "$SUITE_DIR" --no-audit --no-fund --loglevel=error \
		"@modelcontextprotocol/conformance@$CONFORMANCE_VERSION" >&2
	[ -f "$INDEX" ] || die "the suite did not install ($INDEX)"
}

mkdir -p "$CACHE"
install_node22
install_suite
if $listing; then
	exec "$NODE" "$INDEX" list "$@"
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
OUT=${CONFORMANCE_OUT:-$work/results}
mkdir -p "$OUT"

# A prebuilt binary: the suite's timeout counts the client's start-up, and
# it kills only its direct child. The suite splits the command on spaces,
# so the path has none.
BIN=$work/stepup-conformance-client
log "building examples/cmd/conformance"
go build -o "$BIN" ./examples/cmd/conformance

has_output_dir=false
for a in "${args[@]}"; do
	case $a in -o | --output-dir | --output-dir=*) has_output_dir=true ;; esac
done
if ! $has_output_dir; then
	args+=(-o "$OUT")
elif [ -n "$judge" ]; then
	die "--judge reads the results, and needs them where CONFORMANCE_OUT says, not in -o"
fi

cmd=("$NODE" "$INDEX" client --command "$BIN" "${args[@]}")
export MCP_CONFORMANCE_CLIENT=$CLIENT
log "suite $CONFORMANCE_VERSION, client $CLIENT: ${args[*]}"
status=0
if [ "${CONFORMANCE_NETNS:-1}" = 1 ]; then
	# shellcheck disable=SC2016 # expanded by the inner shell
	unshare -n sh -c 'ip link set lo up && exec "$@"' sh "${cmd[@]}" || status=$?
else
	"${cmd[@]}" || status=$?
fi

# The suite's own verdict counts failed checks and warnings, but in suite
# mode not the client's exit: a client that got its token and then failed
# the call would pass. The client prints a line when it got through.
if [ -n "$judge" ]; then
	log "judging only the scenarios ${judge}*; the suite's verdict (status $status) counts the others too"
	status=0
fi
if ! $has_output_dir; then
	bad=0
	judged=0
	while IFS= read -r checks; do
		dir=$(dirname "$checks")
		scenario=${dir#"$OUT"/}
		scenario=${scenario%-[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T*}
		if [[ $scenario != "$judge"* ]]; then
			log "not judged: $scenario"
			continue
		fi
		judged=$((judged + 1))
		if [ -n "$judge" ] && grep -Eq '"status": *"(FAILURE|WARNING)"' "$checks"; then
			log "FAILED CHECKS: $scenario ($checks)"
			bad=1
		fi
		if grep -q '^conformance: ok:' "$dir/stdout.txt" 2>/dev/null; then
			log "client got through: $scenario"
		elif [[ $ALLOWED_CLIENT_FAILURES == *" $scenario "* ]]; then
			log "client failed, as this scenario expects: $scenario"
		else
			log "CLIENT FAILED: $scenario (its output is in $dir)"
			sed 's/^/    /' "$dir/stderr.txt" >&2 || true
			bad=1
		fi
	done < <(find "$OUT" -name checks.json | sort)
	if [ "$judged" = 0 ]; then
		log "NO SCENARIO RAN${judge:+ matching $judge}"
		bad=1
	fi
	if [ "$bad" = 1 ] && [ "$status" = 0 ]; then
		status=1
	fi
fi
if [ "$status" = 0 ]; then
	log "PASSED: client $CLIENT, ${args[*]}"
else
	log "FAILED (status $status): client $CLIENT, ${args[*]}"
fi
exit "$status"
