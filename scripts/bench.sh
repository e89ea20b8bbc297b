#!/usr/bin/env bash
# Benchmarks stepup against its peers, prints the report (markdown: the
# tables benchstat makes of the runs, then the checks) on stdout, and exits
# 3 when a check fails, after the whole report (1 when it cannot run at all).
# Progress goes to stderr. docs/benchmarks.md quotes it (scripts/docs.sh
# docs/benchmarks.md).
#
# The checks are those a run can decide on its own, whatever the machine:
# ratios between peers measured in the same run, and counts that do not
# vary (allocs/op, the storms' remedies). No check is on absolute times.
#
# Environment:
#   COUNT            runs of each benchmark (default 10; benchstat wants >= 6
#                    for a confidence interval)
#   BENCHTIME        -benchtime for the parsing and round-trip benchmarks
#   STORM_BENCHTIME  -benchtime for the storms (each iteration is a storm of
#                    1,000 requests; default: go test's)
#   CHECK_TIMES      0: report the time ratios without checking them (CI's
#                    quick run, too short for timings); counts are checked
#   BENCH_OUT        a folder to keep the raw `go test -bench` output in (for
#                    benchstat against another run); a temporary one otherwise
#   BENCH_IN         a folder a run kept its raw output in (BENCH_OUT): report
#                    on it without running the benchmarks again
#
# benchstat is golang.org/x/perf/cmd/benchstat, a tool of the tools module
# (tools/go.mod). Runs from anywhere; works on the repository's go.work.
set -euo pipefail
shopt -s inherit_errexit
cd "$(dirname "${BASH_SOURCE[0]}")/.."

COUNT=${COUNT:-10}
BENCHTIME=${BENCHTIME:-}
STORM_BENCHTIME=${STORM_BENCHTIME:-}
CHECK_TIMES=${CHECK_TIMES:-1}
if [ -n "${BENCH_OUT:-}" ]; then
	mkdir -p "$BENCH_OUT"
	out=$(cd "$BENCH_OUT" && pwd)
else
	out=$(mktemp -d)
	trap 'rm -rf "$out"' EXIT
fi

PARSE_PKG=./examples/compare/parse
ROUNDTRIP_PKG=./examples/bench/roundtrip

log() { printf 'bench.sh: %s\n' "$*" >&2; }

benchstat() { "$out/bin/benchstat" "$@"; }

# run FILE BENCHTIME ROUNDS REGEX PKG: ROUNDS rounds of one run of every
# benchmark matching REGEX in PKG, appended to FILE. The peers compared in
# a table run in the same round, so a drift in the machine's load over the
# run spreads over all of them rather than landing on one.
run() {
	local file=$1 benchtime=$2 rounds=$3 regex=$4 pkg=$5
	local args=(-run '^$' -bench "$regex" -benchmem -count 1)
	[ -z "$benchtime" ] || args+=(-benchtime "$benchtime")
	log "go test ${args[*]} $pkg  ($rounds rounds)"
	local i
	for ((i = 0; i < rounds; i++)); do
		go test "${args[@]}" "$pkg" >>"$file"
	done
}

# median FILE FILTER UNIT: the median of UNIT over the one benchmark of FILE
# that FILTER (benchstat's -filter syntax) selects.
median() {
	benchstat -format csv -filter "$2 .unit:$3" "$1" 2>/dev/null |
		awk -F, -v what="$2 $3" '
		/: / || /^,/ || /^geomean,/ || NF < 2 { next }
		{ v = $2; n++ }
		END {
			if (n != 1) { printf "bench.sh: %d benchmarks for %s, want 1\n", n, what > "/dev/stderr"; exit 1 }
			print v
		}'
}

failed=0
checks=()

# check DESCRIPTION VALUE OP LIMIT: records whether VALUE OP LIMIT (awk's
# comparison operators) holds.
check() {
	local desc=$1 value=$2 op=$3 limit=$4 verdict
	if [[ $desc == *time* ]] && [ "$CHECK_TIMES" = 0 ]; then
		verdict="not checked (CHECK_TIMES=0)"
	elif awk -v v="$value" -v l="$limit" "BEGIN { exit !(v $op l) }"; then
		verdict=ok
	else
		verdict=FAILED
		failed=1
	fi
	checks+=("- $desc: $(printf '%.4g' "$value") (want $op $limit): **$verdict**")
}

# ratio A B: A ÷ B.
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { print (b > 0 ? a / b : "inf") }'; }

fence() {
	echo '```text'
	cat
	echo '```'
}

main() {
	mkdir -p "$out/bin"
	log "building benchstat (tools/go.mod)"
	GOWORK=off go -C tools build -o "$out/bin/" golang.org/x/perf/cmd/benchstat

	# Correctness first: it is quick, and a wrong stepup makes timings moot.
	# Its table is docs/comparison.md's.
	local correctness=$out/correctness.txt
	if ! go test -count=1 -run '^TestParseCorrectness$' "$PARSE_PKG" >"$correctness" 2>&1; then
		cat "$correctness" >&2
		log "TestParseCorrectness failed: stepup is wrong on an input (see above)"
		return 1
	fi

	local parse=$out/parse.txt rt=$out/roundtrip.txt storm=$out/storm.txt
	if [ -n "${BENCH_IN:-}" ]; then
		[ "$(cd "$BENCH_IN" && pwd)" = "$out" ] || cp "$BENCH_IN"/{parse,roundtrip,storm}.txt "$out/"
		COUNT=$(grep -c '^BenchmarkStorm/status=403' "$storm")
	else
		: >"$parse" && : >"$rt" && : >"$storm"
		run "$parse" "$BENCHTIME" "$COUNT" '^BenchmarkParseChallenges$' "$PARSE_PKG"
		run "$rt" "$BENCHTIME" "$COUNT" '^BenchmarkRoundTripNoChallenge$' "$ROUNDTRIP_PKG"
		run "$storm" "$STORM_BENCHTIME" "$COUNT" '^BenchmarkStorm$' "$ROUNDTRIP_PKG"
	fi

	echo "Medians of $COUNT runs${BENCHTIME:+, -benchtime $BENCHTIME}; $(go env GOVERSION), $(nproc 2>/dev/null || echo '?') logical cores."
	echo
	echo "## Challenge parsing: stepup against distribution, containerd and the go-sdk"
	echo
	benchstat -col '/lib@(stepup distribution containerd gosdk)' -row /in parse="$parse" 2>&1 | fence
	echo
	echo "## A round trip that draws no challenge"
	echo
	echo "\`oauth2\` is golang.org/x/oauth2's Transport; \`floor\` the least a token-attaching wrapper"
	echo "does (copy the request and its header, set Authorization); \`base\` no wrapper at all;"
	echo "\`dpop\` is stepup with a DPoP-bound token (RFC 9449): one ES256 proof signed per request."
	echo
	benchstat -col '/wrapper@(oauth2 stepup dpop floor base)' roundtrip="$rt" 2>&1 | fence
	echo
	echo "## Storms: 1,000 concurrent requests that draw one challenge"
	echo
	echo "Per storm: the remedies stepup ran, the requests the resource server answered (each"
	echo "request once, plus its replay) and the time from the release of the goroutines to the"
	echo "last response."
	echo
	benchstat -row /status -filter '.unit:(escalations/op OR refreshes/op OR requests/op OR ms-to-all-done/op)' storms="$storm" 2>&1 | fence
	echo

	p() { median "$parse" "/lib:$1 /in:seed403" "$2"; }
	check "seed403: stepup time ÷ distribution time" "$(ratio "$(p stepup sec/op)" "$(p distribution sec/op)")" '<=' 0.6
	check "seed403: stepup time ÷ containerd time" "$(ratio "$(p stepup sec/op)" "$(p containerd sec/op)")" '<=' 0.6
	check "seed403: stepup allocs/op" "$(p stepup allocs/op)" '<=' 3
	r() { median "$rt" "/wrapper:$1" "$2"; }
	check "round trip: stepup time ÷ oauth2 time" "$(ratio "$(r stepup sec/op)" "$(r oauth2 sec/op)")" '<=' 0.7
	check "round trip: stepup allocs/op ÷ oauth2 allocs/op" "$(ratio "$(r stepup allocs/op)" "$(r oauth2 allocs/op)")" '<' 1
	check "round trip: dpop time ÷ stepup time (the proof's signature)" "$(ratio "$(r dpop sec/op)" "$(r stepup sec/op)")" '<=' 150
	check "round trip: stepup allocs/op over the floor's" "$(awk -v a="$(r stepup allocs/op)" -v b="$(r floor allocs/op)" 'BEGIN { print a - b }')" '<=' 0
	s() { median "$storm" "/status:$1" "$2"; }
	check "403 storm: escalations" "$(s 403 escalations/op)" '==' 1
	check "403 storm: refreshes" "$(s 403 refreshes/op)" '==' 0
	check "401 storm: refreshes" "$(s 401 refreshes/op)" '==' 1
	check "401 storm: escalations" "$(s 401 escalations/op)" '==' 0
	check "403 storm: requests answered" "$(s 403 requests/op)" '==' 2000
	check "401 storm: requests answered" "$(s 401 requests/op)" '==' 2000

	echo "## Checks"
	echo
	echo "Ratios between peers of the same run, and counts that do not vary; \`scripts/bench.sh\` fails"
	echo "when one fails."
	echo
	printf '%s\n' "${checks[@]}"
	if [ -n "${BENCH_OUT:-}" ]; then
		log "raw output kept in $out"
	fi
	if [ "$failed" -ne 0 ]; then
		log "a check failed (see ## Checks)"
		exit 3
	fi
}

main
