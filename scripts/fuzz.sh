#!/usr/bin/env bash
# Run every Fuzz target in the module for FUZZTIME (default 5s) each.
# Targets are discovered from the package test files, so new ones are picked
# up automatically. go test -fuzz accepts one package and one target per run.
#
# usage: scripts/fuzz.sh [FUZZTIME]
set -euo pipefail
cd "$(dirname "$0")/.."
fuzztime=${1:-${FUZZTIME:-5s}}

targets=()
# One line per package: import path, directory, test files (build-constraint aware).
while IFS=$'\t' read -r pkg dir files; do
	[ -n "$files" ] || continue
	for f in $files; do
		while read -r name; do
			targets+=("$pkg $name")
		done < <(grep -oE '^func Fuzz[A-Za-z0-9_]*\(' "$dir/$f" | sed -E 's/^func (Fuzz[A-Za-z0-9_]*)\($/\1/')
	done
done < <(go list -f '{{.ImportPath}}{{"\t"}}{{.Dir}}{{"\t"}}{{join .TestGoFiles " "}} {{join .XTestGoFiles " "}}' ./...)

if [ ${#targets[@]} -eq 0 ]; then
	echo "fuzz: no Fuzz targets found"
	exit 0
fi

echo "fuzz: ${#targets[@]} target(s), ${fuzztime} each"
failed=()
for t in "${targets[@]}"; do
	pkg=${t% *}
	name=${t#* }
	echo "=== fuzz $pkg $name"
	if ! go test -run='^$' -fuzz="^${name}\$" -fuzztime="$fuzztime" "$pkg"; then
		failed+=("$pkg $name")
	fi
done

if [ ${#failed[@]} -gt 0 ]; then
	echo "fuzz: FAILED targets (failing inputs are saved under the package's testdata/fuzz/):" >&2
	printf '  %s\n' "${failed[@]}" >&2
	exit 1
fi
echo "fuzz: ok (${#targets[@]} target(s))"
