#!/usr/bin/env bash
# Install (or reuse) the security scanner of the tests, checkov, into its own virtual environment in the tool cache:
#
#   scripts/scanner.sh            -> ${TRITONFIL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tritonfil}/bin/checkov
#
# checkov comes from PyPI at the versions of requirements/checkov.txt (its dependency pins clash with the project's
# requirements/lock.txt, hence a venv of its own, ~300 MB, ~90 s on 2 cores). A stamp keyed on that file makes a
# rerun a no-op. The tests run it with --skip-download inside the loopback-only namespace (no vendor API call).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
CACHE=${TRITONFIL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tritonfil}
PYTHON=${PYTHON:-python3.11}
lock=$here/../requirements/checkov.txt
version=$(sed -n 's/^checkov==//p' "$lock")
key=$(sha256sum "$lock" | cut -c1-16)
venv=$CACHE/venvs/checkov-$version
stamp=$CACHE/stamps/checkov-$key
mkdir -p "$CACHE/bin" "$CACHE/stamps" "$CACHE/venvs"
if [[ -f $stamp && -x $venv/bin/checkov ]]; then
	ln -sfn "$venv/bin/checkov" "$CACHE/bin/checkov"
	exit 0
fi
start=$SECONDS
rm -rf "$venv"
"$PYTHON" -m venv "$venv"
"$venv/bin/python" -m pip install -q --disable-pip-version-check -r "$lock"
"$venv/bin/checkov" --version >/dev/null
ln -sfn "$venv/bin/checkov" "$CACHE/bin/checkov"
rm -f "$CACHE"/stamps/checkov-* && touch "$stamp"
echo "scanner: checkov $version in $venv ($((SECONDS - start))s)"
