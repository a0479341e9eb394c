#!/usr/bin/env bash
# Run pytest from the venv.
# - Through `tritonfil isolate`: as root, pytest runs in a fresh network namespace with only `lo`
#   (tritonfil.localenv.netns decides): the local environment the integration tests start, and every
#   client of it, can reach nothing but loopback. Simulated pods have 10.x addresses; nothing may ever
#   dial them for real.
# - "no tests collected" (exit 5) is a failure, said plainly, never a silent pass.
set -uo pipefail
cd "$(dirname "$0")/.." || exit
start=$SECONDS
.venv/bin/tritonfil isolate -- .venv/bin/python -m pytest "$@"
rc=$?
echo "pytest wall time: $((SECONDS - start))s (rc=$rc)"
if [[ $rc -eq 5 ]]; then
	echo "run-pytest: pytest collected no tests in: $* — that is a failure, not a pass" >&2
	exit 1
fi
exit $rc
