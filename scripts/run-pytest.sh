#!/usr/bin/env bash
# Run pytest from the venv; "no tests collected" (exit 5) is a failure, said plainly, never a silent pass.
set -uo pipefail
cd "$(dirname "$0")/.."
start=$SECONDS
.venv/bin/python -m pytest "$@"
rc=$?
echo "pytest wall time: $((SECONDS - start))s (rc=$rc)"
if [[ $rc -eq 5 ]]; then
	echo "run-pytest: pytest collected no tests in: $* — that is a failure, not a pass" >&2
	exit 1
fi
exit $rc
