#!/usr/bin/env bash
# Install the pinned CLIs of the AWX execution environment: helm, kubectl, eksctl, istioctl.
#
#   install-tools.sh VERSIONS_ENV DEST_DIR     download, verify and install into DEST_DIR (image build)
#   install-tools.sh --print VERSIONS_ENV      print "tool version archive-url checksum-url" per tool (no network)
#
# Versions: HELM_VERSION, KUBERNETES_VERSION (kubectl), EKSCTL_VERSION from VERSIONS_ENV (the repository's
# scripts/versions.env, copied into the build context). istioctl must match the Istio release the istio role
# installs, so it comes from ISTIO_VERSION (set by execution-environment.yml from roles/istio's istio_version;
# a versions.env that defines ISTIO_VERSION wins). versions.env's ISTIO_MODULE_VERSION is a source snapshot
# for the local build, not a release with downloadable binaries.
#
# Integrity: every download is checked against the SHA-256 its publisher releases next to it (fetched over
# HTTPS from the same release). When VERSIONS_ENV also pins <TOOL>_SHA256_<ARCH> (e.g. HELM_SHA256_AMD64),
# the archive must match that pin as well, so a compromised release page cannot slip a binary through.
# Architecture: TARGETARCH (amd64, arm64) when set by the builder, else from `uname -m`.
set -euo pipefail

die() { printf 'install-tools: %s\n' "$*" >&2; exit 1; }

print_only=false
if [[ ${1:-} == --print ]]; then print_only=true; shift; fi
[[ $# -ge 1 ]] || die "usage: install-tools.sh [--print] VERSIONS_ENV [DEST_DIR]"
versions_env=$1
dest=${2:-}
$print_only || [[ -n $dest ]] || die "usage: install-tools.sh VERSIONS_ENV DEST_DIR"
[[ -f $versions_env ]] || die "$versions_env: no such file"

# shellcheck source=../../scripts/versions.env
. "$versions_env"
: "${HELM_VERSION:?HELM_VERSION missing from $versions_env}"
: "${KUBERNETES_VERSION:?KUBERNETES_VERSION missing from $versions_env}"
: "${EKSCTL_VERSION:?EKSCTL_VERSION missing from $versions_env}"
: "${ISTIO_VERSION:?ISTIO_VERSION not set (execution-environment.yml passes the istio role default)}"

arch=${TARGETARCH:-}
if [[ -z $arch ]]; then
	case $(uname -m) in
	x86_64) arch=amd64 ;;
	aarch64 | arm64) arch=arm64 ;;
	*) die "unsupported machine $(uname -m) (set TARGETARCH to amd64 or arm64)" ;;
	esac
fi
[[ $arch == amd64 || $arch == arm64 ]] || die "unsupported TARGETARCH $arch (amd64 or arm64)"

# tool version archive-url checksum-url member (member: path of the binary inside the archive, '-' for a bare binary)
helm_file=helm-$HELM_VERSION-linux-$arch.tar.gz
eksctl_file=eksctl_Linux_$arch.tar.gz
istioctl_file=istioctl-${ISTIO_VERSION#v}-linux-$arch.tar.gz
tools=(
	"helm $HELM_VERSION https://get.helm.sh/$helm_file https://get.helm.sh/$helm_file.sha256sum linux-$arch/helm"
	"kubectl $KUBERNETES_VERSION https://dl.k8s.io/release/$KUBERNETES_VERSION/bin/linux/$arch/kubectl https://dl.k8s.io/release/$KUBERNETES_VERSION/bin/linux/$arch/kubectl.sha256 -"
	"eksctl $EKSCTL_VERSION https://github.com/eksctl-io/eksctl/releases/download/$EKSCTL_VERSION/$eksctl_file https://github.com/eksctl-io/eksctl/releases/download/$EKSCTL_VERSION/eksctl_checksums.txt eksctl"
	"istioctl ${ISTIO_VERSION#v} https://github.com/istio/istio/releases/download/${ISTIO_VERSION#v}/$istioctl_file https://github.com/istio/istio/releases/download/${ISTIO_VERSION#v}/$istioctl_file.sha256 istioctl"
)

if $print_only; then
	for t in "${tools[@]}"; do
		read -r name version url sum_url _ <<<"$t"
		printf '%s %s %s %s\n' "$name" "$version" "$url" "$sum_url"
	done
	exit 0
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$dest"

fetch() { curl --fail --silent --show-error --location --retry 3 --proto '=https' --tlsv1.2 -o "$2" "$1" || die "download failed: $1"; }

for t in "${tools[@]}"; do
	read -r name version url sum_url member <<<"$t"
	file=$work/${url##*/}
	fetch "$url" "$file"
	fetch "$sum_url" "$work/$name.sums"
	# Publisher checksum files are either "HASH" or "HASH  FILE" lines (eksctl lists every platform).
	published=$(awk -v f="${url##*/}" 'NF == 1 || $2 == f || $2 == "*" f { print $1; exit }' "$work/$name.sums")
	[[ $published =~ ^[0-9a-f]{64}$ ]] || die "$name $version: no checksum for ${url##*/} in $sum_url"
	actual=$(sha256sum "$file" | cut -d' ' -f1)
	[[ $actual == "$published" ]] || die "$name $version: sha256 $actual of ${url##*/} differs from the published $published"
	pin_var=$(echo "${name}_SHA256_${arch}" | tr '[:lower:]' '[:upper:]')
	pinned=${!pin_var:-}
	if [[ -n $pinned && $actual != "$pinned" ]]; then
		die "$name $version: sha256 $actual of ${url##*/} differs from $pin_var=$pinned"
	fi
	if [[ $member == - ]]; then
		install -m 0755 "$file" "$dest/$name"
	else
		tar -xzf "$file" -C "$work" "$member"
		install -m 0755 "$work/$member" "$dest/$name"
	fi
	printf 'install-tools: %s %s (%s) sha256 %s%s\n' "$name" "$version" "$arch" "$actual" "${pinned:+ (pinned)}"
done

# The installed binaries must report the pinned versions.
"$dest/helm" version --short | grep -q -- "$HELM_VERSION" || die "helm does not report $HELM_VERSION"
"$dest/kubectl" version --client | grep -q -- "$KUBERNETES_VERSION" || die "kubectl does not report $KUBERNETES_VERSION"
"$dest/eksctl" version | grep -q -- "${EKSCTL_VERSION#v}" || die "eksctl does not report ${EKSCTL_VERSION#v}"
"$dest/istioctl" version --remote=false | grep -q -- "${ISTIO_VERSION#v}" || die "istioctl does not report ${ISTIO_VERSION#v}"
