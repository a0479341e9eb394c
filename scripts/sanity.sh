#!/usr/bin/env bash
# ansible-test sanity on the collection as users get it (called by `make lint`).
#
#   scripts/sanity.sh [ANSIBLE-TEST-SANITY-ARGS...]     e.g. scripts/sanity.sh --test validate-modules
#
# ansible-test must run from a directory that really is .../ansible_collections/tritonfil/eks (it resolves
# the working directory, so the .collections symlink does not count). So: build the tarball with
# ansible-galaxy (galaxy.yml's build_ignore decides the content, so exactly the shipped files are tested),
# unpack it into a temporary ansible_collections/tritonfil/eks outside the checkout, link the
# dependencies from galaxy.yml (the copies the `ansible` package installed) next to it, and run
# `ansible-test sanity --local` there with the venv's Python (--local: no container). Prints its wall time.
# Ignores: tests/sanity/ignore-2.19.txt, each line with its reason. More: docs/development.md.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${TRITONFIL_VENV_BIN:-$root/.venv/bin}
export PATH=$bin:$PATH
py=$bin/python
start=$SECONDS

work=$(mktemp -d "${TMPDIR:-/tmp}/tritonfil-sanity.XXXXXX")
trap 'rm -rf "$work"' EXIT
ansible-galaxy collection build --force --output-path "$work" "$root" >/dev/null
dest=$work/ansible_collections/tritonfil/eks
mkdir -p "$dest"
tar -xzf "$work"/tritonfil-eks-*.tar.gz -C "$dest"

# Dependencies (validate-modules and the import test load amazon.aws' module_utils).
"$py" - "$root/galaxy.yml" "$work/ansible_collections" <<'EOF'
import importlib, os, sys, yaml
galaxy, dest = sys.argv[1:]
for fqcn in yaml.safe_load(open(galaxy))["dependencies"]:
    ns, name = fqcn.split(".")
    src = list(importlib.import_module(f"ansible_collections.{ns}.{name}").__path__)[0]
    os.makedirs(os.path.join(dest, ns), exist_ok=True)
    os.symlink(src, os.path.join(dest, ns, name))
EOF

# ansible-test 2.19 runs each sanity test in its own virtual environment (~/.ansible/test/venv, cached),
# created without pip and bootstrapped with get-pip.py from ci-files.testing.ansible.com, which is not
# reachable here; the tests' own pinned requirements (ansible_test/_data/requirements/sanity.*.txt) then
# come from the package index. Its error message says to save the script into its cache: when no script
# is there, this stand-in goes there. It does what get-pip.py does, from what is at hand: pip from the
# Python's own ensurepip, then `pip install` of the requested packages (pip==24.2) from the index.
get_pip=${HOME}/.ansible/test/cache/get_pip_24_2.py
if [[ ! -f $get_pip ]]; then
	mkdir -p "$(dirname "$get_pip")"
	cat >"$get_pip.tmp" <<'EOF'
"""Stand-in for get-pip.py 24.2, written by tritonfil.eks scripts/sanity.sh (the original is not reachable)."""
import subprocess
import sys

args = sys.argv[1:]
subprocess.check_call([sys.executable, "-m", "ensurepip", "--default-pip"], stdout=subprocess.DEVNULL)
subprocess.check_call([sys.executable, "-m", "pip", "install"] + [a for a in args if a not in ("--no-setuptools", "--no-wheel")])
if "--no-setuptools" in args:
    subprocess.check_call([sys.executable, "-m", "pip", "uninstall", "--yes", "--quiet", "setuptools"])
EOF
	mv "$get_pip.tmp" "$get_pip"
fi

skip=()
# pslint is not skipped: it only runs on PowerShell files, and the collection has none (with one, and no pwsh,
# which Debian does not package, ansible-test would warn and skip it).
# The shellcheck test needs ShellCheck from Debian (`apt-get install shellcheck`; `scripts/tools.sh debian`
# installs it). Where it is not installed the test is skipped, and said so, rather than failing.
if ! command -v shellcheck >/dev/null; then
	echo "sanity: shellcheck not installed (apt-get install shellcheck): skipping the shellcheck test" >&2
	skip+=(--skip-test shellcheck)
fi

cd "$dest"
rc=0
nice ansible-test sanity --local --python 3.11 --color no ${skip[@]+"${skip[@]}"} "$@" || rc=$?
echo "ansible-test sanity wall time: $((SECONDS - start))s (rc=$rc)"
exit "$rc"
