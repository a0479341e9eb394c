#!/usr/bin/env bash
# Build the collection tarball the execution environment installs, then run ansible-builder.
#
#   awx/ee/build.sh create                       the build context only (offline)
#   awx/ee/build.sh build -t REGISTRY/tritonfil/eks-ee:VERSION [--container-runtime docker]
#                                                 the image (needs podman or docker and the internet)
#
# Any arguments go to ansible-builder; `-f execution-environment.yml -c CONTEXT` are added. CONTEXT is
# $TRITONFIL_EE_CONTEXT, default ${XDG_CACHE_HOME:-~/.cache}/tritonfil/ee-context: outside the checkout, so
# the generated files (ansible-builder's own scripts among them) are never linted or committed.
# The tarball is written to build/ee/tritonfil-eks.tar.gz: a fixed name, so execution-environment.yml
# does not repeat galaxy.yml's version (ansible-galaxy reads the version from the tarball's MANIFEST.json).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
bin=${TRITONFIL_VENV_BIN:-$root/.venv/bin}
PATH=$bin:$PATH

[[ $# -ge 1 ]] || { echo "usage: awx/ee/build.sh create|build [ansible-builder args]" >&2; exit 2; }

out=build/ee
mkdir -p "$out"
# Built next to its destination, then renamed: concurrent runs never see a half-written tarball.
tmp=$(mktemp -d "$out/.build.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
ansible-galaxy collection build --force --output-path "$tmp" . >/dev/null
mv "$tmp"/tritonfil-eks-*.tar.gz "$out/tritonfil-eks.tar.gz"
rm -rf "$tmp"
trap - EXIT

cmd=$1
shift
context=${TRITONFIL_EE_CONTEXT:-${XDG_CACHE_HOME:-$HOME/.cache}/tritonfil/ee-context}
exec ansible-builder "$cmd" -f execution-environment.yml -c "$context" "$@"
