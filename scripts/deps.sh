#!/usr/bin/env bash
# Check (and on Debian, install) the system packages the interop tests need:
#   - Debian's /usr/bin/python3 with the zmq module   (python3-zmq)
#   - libzmq headers visible to pkg-config             (libzmq3-dev, pkg-config)
#   - a C compiler with libc headers (cgo, go test -race) (gcc, libc6-dev)
#
# Quiet and idempotent: prints the single line "deps: ok" when everything is
# present. Otherwise installs the packages with apt-get when running as root
# (or when sudo works without a password), or prints what to install and
# exits non-zero.
set -euo pipefail

PKGS=(python3-zmq libzmq3-dev pkg-config gcc libc6-dev)
PYTHON=/usr/bin/python3

missing() {
	local m=()
	if ! [ -x "$PYTHON" ] || ! "$PYTHON" -c 'import zmq' >/dev/null 2>&1; then
		m+=("python3-zmq ($PYTHON cannot import zmq)")
	fi
	if ! command -v pkg-config >/dev/null 2>&1; then
		m+=("pkg-config (not on PATH)")
	elif ! pkg-config --exists libzmq; then
		m+=("libzmq3-dev (pkg-config --exists libzmq failed)")
	fi
	local cc
	cc=$(go env CC 2>/dev/null || true)
	cc=${cc:-gcc}
	if ! command -v "${cc%% *}" >/dev/null 2>&1; then
		m+=("gcc (C compiler '$cc' not found)")
	elif ! printf '#include <stdio.h>\nint main(void){return 0;}\n' |
		${cc} -x c -o /dev/null - >/dev/null 2>&1; then
		m+=("libc6-dev ('$cc' cannot compile a C program)")
	fi
	if [ ${#m[@]} -gt 0 ]; then
		printf '%s\n' "${m[@]}"
	fi
}

report=$(missing)
if [ -z "$report" ]; then
	echo "deps: ok"
	exit 0
fi

echo "deps: missing:"
printf '%s\n' "$report" | sed 's/^/  - /'

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
	if command -v sudo >/dev/null 2>&1 && sudo -n true >/dev/null 2>&1; then
		SUDO=(sudo -n)
	else
		SUDO=(none)
	fi
fi

if [ "${SUDO[0]:-}" = none ] || ! command -v apt-get >/dev/null 2>&1; then
	echo "deps: cannot install automatically (need root or passwordless sudo, and apt-get)." >&2
	echo "deps: please run:" >&2
	echo "  sudo apt-get update && sudo apt-get install -y --no-install-recommends ${PKGS[*]}" >&2
	exit 1
fi

echo "deps: installing ${PKGS[*]} with apt-get"
export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get -o DPkg::Lock::Timeout=300 update -qq
"${SUDO[@]}" apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends "${PKGS[@]}" >/dev/null

report=$(missing)
if [ -n "$report" ]; then
	echo "deps: still missing after apt-get install:" >&2
	printf '%s\n' "$report" | sed 's/^/  - /' >&2
	exit 1
fi
echo "deps: ok"
