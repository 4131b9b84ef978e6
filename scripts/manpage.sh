#!/usr/bin/env bash
# Write a man page for a command from its --help text, preformatted, so the
# page and --help never disagree: manpage.sh BINARY SUMMARY > NAME.1
set -euo pipefail
bin=$1 summary=$2
name=$(basename "$bin")
upper=$(printf '%s' "$name" | tr '[:lower:]' '[:upper:]')
version=$("$bin" --version | head -n1)
cat <<HEAD
.TH $upper 1 "" "$version" "zbroker"
.SH NAME
$name \\- $summary
.SH DESCRIPTION
.nf
HEAD
# Escape backslashes, and leading dots and quotes that troff would read as
# requests.
"$bin" --help | sed -e 's/\\/\\e/g' -e "s/^\\([.']\\)/\\\\\\&\\1/"
cat <<TAIL
.fi
.SH SEE ALSO
zbroker(1), zpipe(1), mdp(1), zclone(1); docs/ in the source tree.
TAIL
