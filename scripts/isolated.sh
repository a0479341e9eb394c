#!/usr/bin/env bash
# Run CMD in a fresh network namespace that has only `lo` when root (as is otherwise, or when already
# isolated): `tritonfil isolate -- CMD`, where tritonfil.localenv.netns decides.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
tritonfil=$here/../.venv/bin/tritonfil
[[ -x $tritonfil ]] || tritonfil=tritonfil
exec "$tritonfil" isolate -- "$@"
