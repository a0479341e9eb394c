#!/usr/bin/env bash
# Run CMD in a fresh network namespace that has only `lo` when root (no-op otherwise, or when
# already isolated). Everything CMD starts can reach nothing but loopback.
set -euo pipefail
if [[ $(id -u) -eq 0 && -z ${TRITONFIL_ISOLATED:-} ]]; then
	export TRITONFIL_ISOLATED=1
	exec unshare --net -- bash -c 'ip link set lo up && exec "$@"' bash "$@"
fi
exec "$@"
