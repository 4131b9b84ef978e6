#!/usr/bin/env bash
# The whole test suite: system deps, gofmt, go vet, a short fuzz smoke of
# every Fuzz target, then all tests with the race detector (interop tests
# required). The full go test run comes last so its per-package summary
# lines end the output. Exits non-zero if any step fails.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { echo; echo "==> $*"; }

step "deps"
bash scripts/deps.sh

step "gofmt -l"
bash scripts/gofmt-check.sh

step "go vet ./..."
go vet ./...

step "fuzz smoke (${FUZZTIME:-5s} per target)"
bash scripts/fuzz.sh "${FUZZTIME:-5s}"

step "ZBROKER_INTEROP=require go test -race -count=1 ./..."
ZBROKER_INTEROP=require go test -race -count=1 ./...
