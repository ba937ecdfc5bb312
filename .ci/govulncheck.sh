#!/usr/bin/env bash
# govulncheck over the module, offline. CI reaches the Go module proxy but not vuln.go.dev, so the
# vulnerability database is built by tools/vulndb from the OSV entries of the golang.org/x/vulndb
# module (served by the module proxy) and read with -db file://. Prints govulncheck's findings,
# then tools/vulngate decides: exit 3 when the code calls a vulnerable symbol of a dependency in
# go.mod; called vulnerabilities of the standard library are printed as warnings naming the Go
# release that fixes them (the machine's toolchain fixes those, not go.mod), and do not fail.
#
# Arguments go to govulncheck (default ./...), e.g. `.ci/govulncheck.sh -show verbose ./...`.
# New advisories arrive by raising VULNDB_VERSION to a newer pseudo-version of golang.org/x/vulndb
# (`go list -m golang.org/x/vulndb@latest` names it).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$HOME/go/bin:$PATH"

GOVULNCHECK_VERSION="${GOVULNCHECK_VERSION:-v1.9.0}"
VULNDB_VERSION="${VULNDB_VERSION:-v0.0.0-20261105234957-e22db6528018}"

if [ $# -eq 0 ]; then
  set -- ./...
fi
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
go run ./tools/vulndb -version "$VULNDB_VERSION" -o "$tmp/vulndb"
# Installed rather than run with `go run`, which would turn its exit status 3 into 1.
GOBIN="$tmp/bin" go install "golang.org/x/vuln/cmd/govulncheck@$GOVULNCHECK_VERSION"
"$tmp/bin/govulncheck" -db "file://$tmp/vulndb" "$@" || true
"$tmp/bin/govulncheck" -db "file://$tmp/vulndb" -format json "$@" | go run ./tools/vulngate
