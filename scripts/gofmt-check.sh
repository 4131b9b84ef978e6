#!/usr/bin/env bash
# Fail if any Go file in the repo is not gofmt-formatted.
set -euo pipefail
cd "$(dirname "$0")/.."
unformatted=$(gofmt -l .)
if [ -n "$unformatted" ]; then
	echo "gofmt: these files need formatting (run: gofmt -w <file>):" >&2
	printf '  %s\n' $unformatted >&2
	exit 1
fi
echo "gofmt: ok"
