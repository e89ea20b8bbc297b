#!/usr/bin/env bash
# Builds the Go vulnerability database govulncheck reads, from the module
# proxy alone, and prints the folder it is in (for `govulncheck -db file://DIR`).
#
# The OSV reports come from the golang.org/x/vulndb module, at the version
# tools/vulndb/go.mod names (`go get golang.org/x/vulndb@latest` there to
# update); x/vulndb's own cmd/indexdb lays them out as a v1 database
# (index/db.json, index/modules.json, index/vulns.json, ID/GO-*.json). The
# result is cached per version under ${XDG_CACHE_HOME:-~/.cache}/stepup-vulndb
# and built only when missing.
set -euo pipefail
shopt -s inherit_errexit
cd "$(dirname "${BASH_SOURCE[0]}")/../tools/vulndb"
export GOWORK=off # a module of its own, not in the repository's go.work

version=$(go list -m -f '{{.Version}}' golang.org/x/vulndb)
db=${XDG_CACHE_HOME:-$HOME/.cache}/stepup-vulndb/$version
if [ ! -s "$db/index/db.json" ]; then
	go mod download golang.org/x/vulndb
	osv=$(go list -m -f '{{.Dir}}' golang.org/x/vulndb)/data/osv
	mkdir -p "$(dirname "$db")"
	tmp=$(mktemp -d "$db.XXXXXX")
	trap 'rm -rf "$tmp"' EXIT
	printf 'vulndb.sh: building the database from %s\n' "$osv" >&2
	go tool indexdb -vulns "$osv" -out "$tmp/db"
	rm -rf "$db"
	mv "$tmp/db" "$db"
fi
printf '%s\n' "$db"
