#!/usr/bin/env bash
# Benchmarks stepup against the libraries it is measured against (issue 4)
# and prints, as markdown on stdout, the machine, a table of medians with
# ratios to the peers, and the parse correctness table. Progress goes to
# stderr, so `scripts/bench.sh > bench.md` keeps only the report.
#
# Environment:
#   COUNT      runs of each benchmark; medians are over these (default 6)
#   BENCHTIME  passed as -benchtime when set (e.g. 500ms, 20000x)
#   BENCH_OUT  directory to keep the raw `go test -bench` output in, for
#              benchstat or a rerun of the tables; a temporary one is used
#              and removed when unset
#
# Medians are computed with awk, so the script needs no network and no tool
# beyond the Go toolchain. Runs from anywhere; works on the workspace
# (go.work) at the repository root.
set -euo pipefail
shopt -s inherit_errexit
cd "$(dirname "${BASH_SOURCE[0]}")/.."

COUNT=${COUNT:-6}
BENCHTIME=${BENCHTIME:-}
if [ -n "${BENCH_OUT:-}" ]; then
	out=$BENCH_OUT
	mkdir -p "$out"
else
	out=$(mktemp -d)
	trap 'rm -rf "$out"' EXIT
fi

PARSE_PKG=./examples/compare/parse

log() { printf '%s\n' "$*" >&2; }

# bench REGEX OUTFILE PKG...: runs the benchmarks matching REGEX, no tests.
bench() {
	local regex=$1 file=$2
	shift 2
	local args=(-run '^$' -bench "$regex" -benchmem -count "$COUNT")
	if [ -n "$BENCHTIME" ]; then
		args+=(-benchtime "$BENCHTIME")
	fi
	log "go test ${args[*]} $*"
	go test "${args[@]}" "$@" >"$file"
}

# medians FILE: one line per benchmark and unit, "name<TAB>unit<TAB>median<TAB>runs",
# in the order the benchmarks ran. The -GOMAXPROCS suffix is dropped from
# names. Any unit is taken, so custom metrics (b.ReportMetric) come through.
medians() {
	awk '
	/^Benchmark/ && NF >= 4 {
		name = $1
		sub(/-[0-9]+$/, "", name)
		if (!(name in seen)) { seen[name] = 1; order[++nn] = name }
		for (i = 3; i + 1 <= NF; i += 2) {
			k = name SUBSEP $(i + 1)
			if (!(k in cnt)) { cnt[k] = 0; units[name] = units[name] " " $(i + 1) }
			val[k, ++cnt[k]] = $i
		}
	}
	END {
		for (a = 1; a <= nn; a++) {
			name = order[a]
			m = split(units[name], us, " ")
			for (b = 1; b <= m; b++) {
				k = name SUBSEP us[b]
				n = cnt[k]
				for (i = 1; i <= n; i++) s[i] = val[k, i] + 0
				for (i = 2; i <= n; i++) {      # insertion sort: mawk has no asort
					x = s[i]
					for (j = i - 1; j >= 1 && s[j] > x; j--) s[j + 1] = s[j]
					s[j + 1] = x
				}
				med = (n % 2) ? s[(n + 1) / 2] : (s[n / 2] + s[n / 2 + 1]) / 2
				printf "%s\t%s\t%.10g\t%d\n", name, us[b], med, n
			}
		}
	}' "$1"
}

machine() {
	local cpu cores
	cpu=$(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null || true)
	if [ -z "$cpu" ]; then
		cpu=$(sysctl -n machdep.cpu.brand_string 2>/dev/null || echo unknown)
	fi
	cores=$(nproc 2>/dev/null || getconf _NPROCESSORS_ONLN 2>/dev/null || echo '?')
	echo "## Machine"
	echo
	echo "- $(go version)"
	echo "- CPU: $cpu, $cores logical cores (GOMAXPROCS ${GOMAXPROCS:-default})"
	echo "- OS: $(uname -srm)"
	if [ -r /proc/loadavg ]; then
		echo "- load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
	fi
	echo "- commit: $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD -- 2>/dev/null || echo ' (with uncommitted changes)')"
	echo "- medians of $COUNT runs${BENCHTIME:+, -benchtime $BENCHTIME}"
}

# parse_table MEDIANS: BenchmarkParseChallenges/<library>/<input> as one row
# per input and library, with stepup's time over each library's.
parse_table() {
	echo "## Challenge parsing: BenchmarkParseChallenges/<library>/<input>"
	echo
	awk -F'\t' '
	function num(x) { return x >= 100 ? sprintf("%.0f", x) : sprintf("%.1f", x) }
	$1 ~ /^BenchmarkParseChallenges\// {
		split($1, p, "/")
		lib = p[2]; in_ = p[3]
		if (!(lib in seenLib)) { seenLib[lib] = 1; libs[++nl] = lib }
		if (!(in_ in seenIn)) { seenIn[in_] = 1; ins[++ni] = in_ }
		v[lib, in_, $2] = $3
		has[lib, in_] = 1
	}
	END {
		print "| input | library | ns/op | B/op | allocs/op | stepup time ÷ library time |"
		print "|---|---|---:|---:|---:|---:|"
		for (i = 1; i <= ni; i++) {
			in_ = ins[i]
			ref = v["stepup", in_, "ns/op"]
			for (l = 1; l <= nl; l++) {
				lib = libs[l]
				if (!has[lib, in_]) continue
				t = v[lib, in_, "ns/op"]
				ratio = (lib == "stepup") ? "—" : (ref != "" && t > 0 ? sprintf("%.2f×", ref / t) : "n/a")
				printf "| %s | %s | %s | %g | %g | %s |\n", in_, lib, num(t), v[lib, in_, "B/op"], v[lib, in_, "allocs/op"], ratio
			}
		}
		# The targets issue 4 sets for the parser.
		t = v["stepup", "seed403", "ns/op"]; d = v["distribution", "seed403", "ns/op"]
		a = v["stepup", "seed403", "allocs/op"]
		if (t != "" && d > 0) {
			printf "\nTargets on seed403: stepup ÷ distribution time %.2f (target ≤ 0.60: %s); stepup allocs/op %g (target ≤ 3: %s).\n",
				t / d, (t / d <= 0.6 ? "met" : "MISSED"), a, (a <= 3 ? "met" : "MISSED")
		}
	}' "$1"
}

# pkgs_defining FUNC: the package directories (./relative) whose tests define
# func FUNC, in either module.
pkgs_defining() {
	{ grep -rlE --include='*_test.go' --exclude-dir=.git --exclude-dir=testdata "^func $1\(" . || true; } |
		xargs -r -n1 dirname | sort -u
}

# correctness_table: TestParseCorrectness prints its table between markers
# when STEPUP_TABLE is set. The test fails if stepup is wrong on any input,
# and then so does this script.
correctness_table() {
	local log_file=$out/correctness.txt
	if ! STEPUP_TABLE=1 go test -count=1 -run '^TestParseCorrectness$' -v "$PARSE_PKG" >"$log_file" 2>&1; then
		cat "$log_file" >&2
		log "TestParseCorrectness failed: stepup is wrong on an input (see above)"
		return 1
	fi
	echo "## Challenge parsing: correctness"
	echo
	echo "✓ = the library returned the expected challenges, usable, with exactly the expected parameters, or, for a malformed challenge, did not return it as usable."
	echo
	sed -n '/^<!-- correctness-table -->$/,/^<!-- \/correctness-table -->$/p' "$log_file" | sed '1d;$d'
}

# ===========================================================================
# ROUND-TRIP AND STORM BENCHMARKS (examples/bench/roundtrip).
#
#   BenchmarkRoundTripNoChallenge/{base,oauth2,floor,stepup}  in-memory
#       base RoundTripper answering 200: bare, oauth2.Transport, the
#       least a token-attaching wrapper must do (copy the request and its
#       header, set Authorization), stepup.
#       Target: stepup ≤ 0.6× oauth2's time, fewer allocations.
#   BenchmarkStorm/{403,401}  1,000 goroutines on one 403
#       insufficient_scope and on one 401 invalid_token, reporting
#       escalations, refreshes, requests and time to all-done per storm
#       with b.ReportMetric.
# They are found by function name in the packages of the examples module,
# where the peer comparisons live (issue 4); if none defines them, these
# sections say so and the script carries on. The root package has a
# BenchmarkRoundTripNoChallenge of its own, stepup alone: running it would
# cost time for no row, and a sub-benchmark of the same name there would
# mix into the medians.
# ===========================================================================

ROUNDTRIP_FUNC=BenchmarkRoundTripNoChallenge
STORM_FUNC_PREFIX=${STORM_FUNC_PREFIX:-BenchmarkStorm}

# bench_rounds REGEX OUTFILE PKG...: as bench, but as COUNT rounds of one
# run of every matching benchmark, rather than COUNT runs of one benchmark
# after another. The round-trip variants are compared with each other, and
# on a shared machine the load drifts over a run of several seconds: in
# rounds, each variant's runs are spread over the same stretch of time.
bench_rounds() {
	local regex=$1 file=$2
	shift 2
	local args=(-run '^$' -bench "$regex" -benchmem -count 1)
	if [ -n "$BENCHTIME" ]; then
		args+=(-benchtime "$BENCHTIME")
	fi
	log "go test ${args[*]} $*  ($COUNT rounds)"
	: >"$file"
	local i
	for ((i = 0; i < COUNT; i++)); do
		go test "${args[@]}" "$@" >>"$file"
	done
}

# roundtrip_table MEDIANS: one row per variant with its overhead over the
# bare base, then stepup against oauth2: overhead over overhead, time over
# time, and the issue's targets.
roundtrip_table() {
	echo "## Round trip without challenge: $ROUNDTRIP_FUNC/<variant>"
	echo
	awk -F'\t' -v f="$ROUNDTRIP_FUNC" '
	function num(x) { return x >= 100 ? sprintf("%.0f", x) : sprintf("%.1f", x) }
	function sgn(x) { return x >= 100 || x <= -100 ? sprintf("%+.0f", x) : sprintf("%+.1f", x) }
	index($1, f "/") == 1 {
		name = substr($1, length(f) + 2)
		if (!(name in seen)) { seen[name] = 1; names[++nn] = name }
		v[name, $2] = $3
	}
	END {
		print "| variant | ns/op | B/op | allocs/op | overhead over base: ns | B | allocs |"
		print "|---|---:|---:|---:|---:|---:|---:|"
		hasBase = (("base", "ns/op") in v)
		for (i = 1; i <= nn; i++) {
			n = names[i]
			line = sprintf("| %s | %s | %g | %g |", n, num(v[n, "ns/op"]), v[n, "B/op"], v[n, "allocs/op"])
			if (n == "base" || !hasBase) line = line " — | — | — |"
			else line = line sprintf(" %s | %+g | %+g |", sgn(v[n, "ns/op"] - v["base", "ns/op"]),
				v[n, "B/op"] - v["base", "B/op"], v[n, "allocs/op"] - v["base", "allocs/op"])
			print line
		}
		s = v["stepup", "ns/op"]; o = v["oauth2", "ns/op"]; b = v["base", "ns/op"]
		if (s == "" || o <= 0) exit
		sa = v["stepup", "allocs/op"]; oa = v["oauth2", "allocs/op"]
		print ""
		printf "- stepup time ÷ oauth2 time: **%.3f** (target ≤ 0.60: %s)\n", s / o, (s / o <= 0.6 ? "met" : "MISSED")
		f = v["floor", "ns/op"]
		if (f > 0)
			printf "- the floor (copy the request and its header, set Authorization) ÷ oauth2 time: %.3f; stepup over the floor: %s ns (origin check, token, challenge check)\n", f / o, sgn(s - f)
		if (hasBase && o - b > 0)
			printf "- stepup overhead ÷ oauth2 overhead (time over base): **%.2f** (%s ns vs %s ns)\n", (s - b) / (o - b), sgn(s - b), sgn(o - b)
		printf "- allocs/op: stepup %g vs oauth2 %g (target fewer: %s)\n", sa, oa, (sa < oa ? "met" : "MISSED")
	}' "$1"
}

roundtrip_section() {
	local pkgs
	pkgs=$(pkgs_defining "$ROUNDTRIP_FUNC" | grep '^\./examples/' || true)
	if [ -z "$pkgs" ]; then
		printf '## Round trip: %s\n\n_Not measured: no package defines %s yet._\n' "$ROUNDTRIP_FUNC" "$ROUNDTRIP_FUNC"
		return
	fi
	# shellcheck disable=SC2086 # one package directory per word
	bench_rounds "^${ROUNDTRIP_FUNC}\$" "$out/roundtrip.txt" $pkgs
	medians "$out/roundtrip.txt" >"$out/roundtrip.tsv"
	roundtrip_table "$out/roundtrip.tsv"
}

# storm_table MEDIANS: one row per storm with the medians of its custom
# metrics, and whether the counts are what one shared remedy gives.
storm_table() {
	echo "## Storms: ${STORM_FUNC_PREFIX}/<status>, 1,000 concurrent requests per storm"
	echo
	awk -F'\t' -v f="$STORM_FUNC_PREFIX" '
	index($1, f) == 1 {
		name = substr($1, length(f) + 1); sub(/^\//, "", name)
		if (!(name in seen)) { seen[name] = 1; names[++nn] = name }
		v[name, $2] = $3; has[name, $2] = 1
	}
	function cell(n, u) { return has[n, u] ? sprintf("%g", v[n, u]) : "" }
	END {
		# What one shared remedy per storm gives: a 403 insufficient_scope
		# is escalated once and never refreshed, a 401 invalid_token is
		# refreshed once and never escalated.
		wantE["403"] = 1; wantR["403"] = 0
		wantE["401"] = 0; wantR["401"] = 1
		print "| storm | escalations/op | refreshes/op | requests/op | ms-to-all-done/op | counts as expected |"
		print "|---|---:|---:|---:|---:|---|"
		for (i = 1; i <= nn; i++) {
			n = names[i]
			ok = "—"
			if (n in wantE) {
				want = sprintf("%d escalation%s, %d refresh%s", wantE[n], (wantE[n] == 1 ? "" : "s"), wantR[n], (wantR[n] == 1 ? "" : "es"))
				ok = (v[n, "escalations/op"] == wantE[n] && v[n, "refreshes/op"] == wantR[n]) ? "yes (" want ")" : "NO: want " want
			}
			printf "| %s | %s | %s | %s | %s | %s |\n", n, cell(n, "escalations/op"), cell(n, "refreshes/op"),
				cell(n, "requests/op"), (has[n, "ms-to-all-done/op"] ? sprintf("%.1f", v[n, "ms-to-all-done/op"]) : ""), ok
		}
		print ""
		print "requests/op counts what the resource server answered: each of the 1,000 requests once, plus its replay after the remedy. ms-to-all-done/op runs from the release of the goroutines to the last response read."
	}' "$1"
}

storm_section() {
	local pkgs
	pkgs=$(pkgs_defining "${STORM_FUNC_PREFIX}[A-Za-z0-9_]*" | grep '^\./examples/' || true)
	if [ -z "$pkgs" ]; then
		printf '## Storms: %s*\n\n_Not measured: no package defines %s* yet._\n' "$STORM_FUNC_PREFIX" "$STORM_FUNC_PREFIX"
		return
	fi
	# shellcheck disable=SC2086 # one package directory per word
	bench "^${STORM_FUNC_PREFIX}" "$out/storm.txt" $pkgs
	medians "$out/storm.txt" >"$out/storm.tsv"
	storm_table "$out/storm.tsv"
}

# ===========================================================================

main() {
	# Correctness first: it is quick, and a wrong stepup makes timings moot.
	local correctness
	correctness=$(correctness_table)

	bench '^BenchmarkParseChallenges$' "$out/parse.txt" "$PARSE_PKG"
	medians "$out/parse.txt" >"$out/parse.tsv"

	machine
	echo
	parse_table "$out/parse.tsv"
	echo
	roundtrip_section
	echo
	storm_section
	echo
	echo "$correctness"
	if [ -n "${BENCH_OUT:-}" ]; then
		log "raw output and medians kept in $out"
	fi
}

main
