#!/usr/bin/env bash
# Build (or reuse) the pinned binaries of the local environment into the tool cache.
#
#   scripts/tools.sh [--check] [TOOL ...]     TOOL in: debian kubernetes etcd kwok metrics-server helm eksctl istioctl
#                                                      prometheus karpenter keda
#
# Everything comes from the Go module proxy and is built here; nothing else is downloaded.
# Cache: ${TRITONFIL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tritonfil}/bin, one stamp file per
# tool version so a rerun is a no-op. A tool already on PATH at the pinned version is linked as is.
# Modules with `replace` directives (Kubernetes, etcd, eksctl) are built through a wrapper module
# that carries the same replace lines, pointed at published versions.
# The build_<tool> functions are called through their names ("build_${t//-/_}"), which shellcheck cannot
# follow: it would call them and everything only they call unreachable.
# shellcheck disable=SC2317
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=versions.env
. "$here/versions.env"
CACHE=${TRITONFIL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tritonfil}
BIN=$CACHE/bin
STAMPS=$CACHE/stamps
SHARE=$CACHE/share
BUILD=$CACHE/build
LOG=$CACHE/logs
mkdir -p "$BIN" "$STAMPS" "$BUILD" "$LOG" "$SHARE"
export GOFLAGS=-mod=mod GOTOOLCHAIN=local CGO_ENABLED=0
export GOPATH=${GOPATH:-$HOME/go}

check_only=false
if [[ ${1:-} == --check ]]; then check_only=true; shift; fi
ALL=(debian kubernetes etcd kwok metrics-server helm eksctl istioctl prometheus karpenter keda)
# Tools the local environment and the tests cannot run without; istioctl is best effort (see README).
REQUIRED=(debian kubernetes etcd kwok metrics-server helm eksctl istioctl prometheus karpenter keda)
# What a build of each tool takes on a fresh machine, in seconds: the one place these numbers live (docs/development.md
# quotes them). Measured on our 2-core machines with other engineers' jobs running (so +-30 %), a cold Go build cache
# (GOCACHE) and each tool built in this order (kubernetes first: the later builds reuse some of its packages). Sources:
# a cold `make local` of 2026-12-01 (kubernetes .. istioctl, the module downloads included), and cold builds of
# prometheus, karpenter and keda alone (TRITONFIL_CACHE and GOCACHE in temporary directories, the Go module cache
# already filled); docs/development.md says which number comes from which run.
declare -A ESTIMATE=(
	[debian]=15 [kubernetes]=460 [etcd]=40 [kwok]=85 [metrics-server]=155 [helm]=80 [eksctl]=320 [istioctl]=255
	[prometheus]=170 [karpenter]=140 [keda]=515
)
# Debian packages: the OCI registry, skopeo to push without a Docker daemon, umoci to build a layout,
# buildah for the ecr_image build alternative (fil_backend ops/Dockerfile) without a Docker engine,
# and ShellCheck for ansible-test's shellcheck sanity test (scripts/sanity.sh, run by `make lint`).
DEBIAN_PACKAGES=(docker-registry skopeo umoci buildah iproute2 shellcheck)
tools=("$@")
[[ ${#tools[@]} -gt 0 ]] || tools=("${ALL[@]}")

log() { printf '[tools] %s\n' "$*" >&2; }

# 75 -> "1m15s"
dur() { local s=$1; if ((s >= 60)); then printf '%dm%02ds' $((s / 60)) $((s % 60)); else printf '%ds' "$s"; fi; }
# 1040 -> "~17 min", 80 -> "~1 min"
approx() { local m=$((($1 + 30) / 60)); printf '~%d min' $((m > 0 ? m : 1)); }

# building NAME VERSION: called by a build_<tool> once it knows it has to build (nothing cached, nothing on PATH).
# Prints the estimate, then a line every TRITONFIL_TOOLS_HEARTBEAT seconds (60) while the build runs.
announced=""
heartbeat=""
building() {
	announced=$1
	local est=${ESTIMATE[$1]:-0}
	log "building $1 $2 (estimate $(approx "$est") on 2 cores)"
	local every=${TRITONFIL_TOOLS_HEARTBEAT:-60} begin=$SECONDS
	if ((every > 0)); then
		(
			nap=""
			trap '[[ -n $nap ]] && kill "$nap" 2>/dev/null; exit 0' TERM
			while :; do
				sleep "$every" &
				nap=$!
				wait "$nap"
				log "  still building $1: $(dur $((SECONDS - begin))) of $(approx "$est")"
			done
		) &
		heartbeat=$!
	fi
}
stop_heartbeat() {
	if [[ -n $heartbeat ]]; then
		kill "$heartbeat" 2>/dev/null || true
		wait "$heartbeat" 2>/dev/null || true
		heartbeat=""
	fi
}
trap stop_heartbeat EXIT

stamp() { echo "$STAMPS/$1-$2"; }
have() { [[ -f $(stamp "$1" "$2") ]]; }

# wrapper NAME VERSION MODULE@VERSION REPLACES PKG... : build PKGs of MODULE in a wrapper module.
wrapper() {
	local name=$1 ver=$2 req=$3 replaces=$4
	shift 4
	local dir=$BUILD/$name-$ver
	rm -rf "$dir" && mkdir -p "$dir"
	{
		printf 'module tritonfil.local/%s\n\ngo 1.26\n\nrequire %s\n' "$name" "${req/@/ }"
		[[ -n $replaces ]] && printf '\nreplace (\n%s\n)\n' "$replaces"
	} >"$dir/go.mod"
	{
		printf '//go:build tools\n\npackage tools\n\nimport (\n'
		local p
		for p in "$@"; do printf '\t_ "%s"\n' "${p%%=*}"; done
		printf ')\n'
	} >"$dir/tools.go"
	(cd "$dir" && go mod tidy) >"$LOG/$name.log" 2>&1 || { log "go mod tidy failed for $name: see $LOG/$name.log"; tail -20 "$LOG/$name.log" >&2; return 1; }
}

# gobuild DIR OUT PKG LDFLAGS [TAGS]
gobuild() {
	local dir=$1 out=$2 pkg=$3 ldflags=${4:-} tags=${5:-}
	log "  go build $(basename "$out") ($pkg)"
	(cd "$dir" && go build -trimpath ${tags:+-tags "$tags"} -ldflags "-s -w $ldflags" -o "$BIN/$out.tmp" "$pkg") >>"$LOG/$out.log" 2>&1 \
		|| { log "build of $out failed: see $LOG/$out.log"; tail -20 "$LOG/$out.log" >&2; return 1; }
	mv "$BIN/$out.tmp" "$BIN/$out"
}

# on_path NAME VERSION-REGEX CMD... : link a matching tool from PATH instead of building it.
on_path() {
	local name=$1 want=$2
	shift 2
	local found
	found=$(PATH=${PATH//$BIN:/} command -v "$name" 2>/dev/null) || return 1
	[[ $found == "$BIN/$name" ]] && return 1
	"$found" "$@" 2>/dev/null | grep -q -- "$want" || return 1
	ln -sf "$found" "$BIN/$name"
	log "using $found ($want) from PATH"
}

build_debian() {
	local missing=() p
	for p in "${DEBIAN_PACKAGES[@]}"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
	done
	[[ ${#missing[@]} -eq 0 ]] && return 0
	$check_only && { log "missing Debian packages: ${missing[*]}"; return 1; }
	if [[ $(id -u) -ne 0 ]]; then
		log "missing Debian packages: ${missing[*]} (run: sudo apt-get install ${missing[*]})"
		return 1
	fi
	building debian "(${missing[*]})"
	{ apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"; } \
		>"$LOG/debian.log" 2>&1 || { log "apt-get failed: see $LOG/debian.log"; tail -20 "$LOG/debian.log" >&2; return 1; }
}

build_kubernetes() {
	local v=$KUBERNETES_VERSION minor=${KUBERNETES_VERSION#v1.}
	have kubernetes "$v" && return 0
	if on_path kube-apiserver "Kubernetes $v" --version && on_path kube-controller-manager "Kubernetes $v" --version \
		&& on_path kube-scheduler "Kubernetes $v" --version && on_path kubectl "Client Version: $v" version --client; then
		touch "$(stamp kubernetes "$v")" && return 0
	fi
	$check_only && return 1
	building kubernetes "$v"
	local mod=$GOPATH/pkg/mod/k8s.io/kubernetes@$v
	[[ -f $mod/go.mod ]] || go mod download k8s.io/kubernetes@"$v"
	# Every `k8s.io/X => ./staging/src/k8s.io/X` becomes `k8s.io/X => k8s.io/X v0.<minor>`.
	local replaces
	replaces=$(sed -n 's#^\s*\(k8s.io/[a-z0-9-]*\) => ./staging/src/.*#\t\1 => \1 v0.'"$minor"'#p' "$mod/go.mod")
	wrapper kubernetes "$v" "k8s.io/kubernetes@$v" "$replaces" \
		k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
		k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubectl
	local ld="-X k8s.io/component-base/version.gitVersion=$v -X k8s.io/component-base/version.gitMajor=1"
	ld+=" -X k8s.io/component-base/version.gitMinor=${minor%%.*} -X k8s.io/component-base/version.gitTreeState=clean"
	ld+=" -X k8s.io/client-go/pkg/version.gitVersion=$v -X k8s.io/client-go/pkg/version.gitMajor=1"
	ld+=" -X k8s.io/client-go/pkg/version.gitMinor=${minor%%.*}"
	local c
	for c in kube-apiserver kube-controller-manager kube-scheduler kubectl; do
		gobuild "$BUILD/kubernetes-$v" "$c" "k8s.io/kubernetes/cmd/$c" "$ld"
	done
	touch "$(stamp kubernetes "$v")"
}

build_etcd() {
	local v=$ETCD_VERSION
	have etcd "$v" && return 0
	on_path etcd "etcd Version: ${v#v}" --version && touch "$(stamp etcd "$v")" && return 0
	$check_only && return 1
	building etcd "$v"
	# etcd server/v3 replaces its sibling modules with ../ paths; its require lines already
	# name the same release, so the wrapper needs no replace at all.
	wrapper etcd "$v" "go.etcd.io/etcd/server/v3@$v" "" go.etcd.io/etcd/server/v3
	gobuild "$BUILD/etcd-$v" etcd go.etcd.io/etcd/server/v3 "-X go.etcd.io/etcd/api/v3/version.GitSHA=${v}"
	touch "$(stamp etcd "$v")"
}

build_kwok() {
	local v=$KWOK_VERSION
	have kwok "$v" && return 0
	if on_path kwok "$v" --version && on_path kwokctl "$v" --version; then
		touch "$(stamp kwok "$v")" && return 0
	fi
	$check_only && return 1
	building kwok "$v"
	wrapper kwok "$v" "sigs.k8s.io/kwok@$v" "" sigs.k8s.io/kwok/cmd/kwok sigs.k8s.io/kwok/cmd/kwokctl
	local ld="-X sigs.k8s.io/kwok/pkg/consts.Version=$v -X sigs.k8s.io/kwok/pkg/consts.KubeVersion=$KUBERNETES_VERSION"
	gobuild "$BUILD/kwok-$v" kwok sigs.k8s.io/kwok/cmd/kwok "$ld"
	gobuild "$BUILD/kwok-$v" kwokctl sigs.k8s.io/kwok/cmd/kwokctl "$ld"
	touch "$(stamp kwok "$v")"
}

build_metrics_server() {
	local v=$METRICS_SERVER_VERSION
	have metrics-server "$v" && return 0
	$check_only && return 1
	building metrics-server "$v"
	wrapper metrics-server "$v" "sigs.k8s.io/metrics-server@$v" "" sigs.k8s.io/metrics-server/cmd/metrics-server
	gobuild "$BUILD/metrics-server-$v" metrics-server sigs.k8s.io/metrics-server/cmd/metrics-server \
		"-X k8s.io/component-base/version.gitVersion=$v"
	# kwokctl applies metrics-server's RBAC/Service/APIService from its release manifest; by default it
	# fetches that from GitHub. Keep the module's own kustomize tree so it is read locally instead.
	local src=$GOPATH/pkg/mod/sigs.k8s.io/metrics-server@$v/manifests
	rm -rf "$CACHE/share/metrics-server-$v" && mkdir -p "$CACHE/share/metrics-server-$v"
	cp -r "$src/." "$CACHE/share/metrics-server-$v/" && chmod -R u+w "$CACHE/share/metrics-server-$v"
	touch "$(stamp metrics-server "$v")"
}

build_helm() {
	local v=$HELM_VERSION
	have helm "$v" && return 0
	on_path helm "$v" version --short && touch "$(stamp helm "$v")" && return 0
	$check_only && return 1
	building helm "$v"
	wrapper helm "$v" "helm.sh/helm/v3@$v" "" helm.sh/helm/v3/cmd/helm
	gobuild "$BUILD/helm-$v" helm helm.sh/helm/v3/cmd/helm \
		"-X helm.sh/helm/v3/internal/version.version=$v -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
	touch "$(stamp helm "$v")"
}

build_eksctl() {
	local v=$EKSCTL_VERSION
	have eksctl "$v" && return 0
	on_path eksctl "${v#v}" version && touch "$(stamp eksctl "$v")" && return 0
	$check_only && return 1
	building eksctl "$v"
	local mod=$GOPATH/pkg/mod/github.com/weaveworks/eksctl@$v
	[[ -f $mod/go.mod ]] || go mod download github.com/weaveworks/eksctl@"$v"
	local replaces
	replaces=$(sed -n '/^replace (/,/^)/{/=>/p}' "$mod/go.mod" | grep -v '^\s*//')
	wrapper eksctl "$v" "github.com/weaveworks/eksctl@$v" "$replaces" github.com/weaveworks/eksctl/cmd/eksctl
	gobuild "$BUILD/eksctl-$v" eksctl github.com/weaveworks/eksctl/cmd/eksctl \
		"-X github.com/weaveworks/eksctl/pkg/version.PreReleaseID="
	touch "$(stamp eksctl "$v")"
}

build_istioctl() {
	local v=$ISTIO_MODULE_VERSION
	have istioctl "$v" && return 0
	$check_only && return 1
	building istioctl "$v"
	wrapper istioctl "$v" "istio.io/istio@$v" "" istio.io/istio/istioctl/cmd/istioctl
	gobuild "$BUILD/istioctl-$v" istioctl istio.io/istio/istioctl/cmd/istioctl \
		"-X istio.io/istio/pkg/version.buildVersion=$v -X istio.io/istio/pkg/version.buildStatus=Clean"
	touch "$(stamp istioctl "$v")"
}

build_prometheus() {
	local v=$PROMETHEUS_VERSION
	have prometheus "$v" && return 0
	$check_only && return 1
	building prometheus "$PROMETHEUS_RELEASE"
	# Debian's prometheus (2.42) has no Kubernetes service discovery; this build keeps only the Kubernetes,
	# file and HTTP discoveries (the plugins' build tags) and no web UI assets (the HTTP API is all we use).
	wrapper prometheus "$v" "github.com/prometheus/prometheus@$v" "" github.com/prometheus/prometheus/cmd/prometheus
	gobuild "$BUILD/prometheus-$v" prometheus github.com/prometheus/prometheus/cmd/prometheus \
		"-X github.com/prometheus/common/version.Version=$PROMETHEUS_RELEASE -X github.com/prometheus/common/version.Revision=$v" \
		remove_all_sd,enable_kubernetes_sd
	touch "$(stamp prometheus "$v")"
}

build_karpenter() {
	local v=$KARPENTER_VERSION
	have karpenter "$v" && return 0
	$check_only && return 1
	building karpenter "$v"
	# Karpenter's core module with its kwok cloud provider (sigs.k8s.io/karpenter/kwok): it creates KWOK nodes
	# from an instance-types file. The module asks for a newer Go patch release than the machine's; the Go
	# proxy serves that toolchain (GOTOOLCHAIN downloads it once into the module cache).
	GOTOOLCHAIN=$KARPENTER_GO_TOOLCHAIN wrapper karpenter "$v" "sigs.k8s.io/karpenter@$v" "" sigs.k8s.io/karpenter/kwok
	GOTOOLCHAIN=$KARPENTER_GO_TOOLCHAIN gobuild "$BUILD/karpenter-$v" karpenter-kwok sigs.k8s.io/karpenter/kwok \
		"-X sigs.k8s.io/karpenter/pkg/operator.Version=$v"
	# The CRDs the controller needs, from the same module: the kwok copies of NodePool/NodeClaim (their CEL
	# rules admit the karpenter.kwok.sh/* requirement keys) and KWOKNodeClass (its status defaults to Ready).
	local mod=$GOPATH/pkg/mod/sigs.k8s.io/karpenter@$v dest=$SHARE/karpenter-$v/crds
	rm -rf "$dest" && mkdir -p "$dest"
	cp "$mod"/kwok/charts/crds/*.yaml "$mod/kwok/apis/crds/karpenter.kwok.sh_kwoknodeclasses.yaml" "$dest/"
	chmod -R u+w "$SHARE/karpenter-$v"
	touch "$(stamp karpenter "$v")"
}

build_keda() {
	local v=$KEDA_VERSION
	have keda "$v" && return 0
	$check_only && return 1
	building keda "$v"
	# KEDA's go.mod has a replace and an exclude that apply only when it is the main module: build in a
	# writable copy of the module (what `go install` cannot do), both commands from the same copy.
	local src=$GOPATH/pkg/mod/github.com/kedacore/keda/v2@$v dir=$BUILD/keda-$v
	[[ -f $src/go.mod ]] || go mod download github.com/kedacore/keda/v2@"$v"
	rm -rf "$dir" && cp -r "$src" "$dir" && chmod -R u+w "$dir"
	(cd "$dir" && go mod download) >"$LOG/keda.log" 2>&1 || { log "go mod download failed for keda: see $LOG/keda.log"; return 1; }
	local ld="-X=github.com/kedacore/keda/v2/version.GitCommit=$v -X=github.com/kedacore/keda/v2/version.Version=${v#v}"
	gobuild "$dir" keda-operator ./cmd/operator "$ld"
	gobuild "$dir" keda-metrics-apiserver ./cmd/adapter "$ld"
	local dest=$SHARE/keda-$v/crds
	rm -rf "$dest" && mkdir -p "$dest" && cp "$dir"/config/crd/bases/*.yaml "$dest/"
	rm -rf "$dir"
	touch "$(stamp keda "$v")"
}

rc=0
built=() cached=() total_est=0
for t in "${tools[@]}"; do
	start=$SECONDS
	announced=""
	if "build_${t//-/_}"; then
		stop_heartbeat
		if [[ -n $announced ]]; then
			log "$t done in $(dur $((SECONDS - start))) (estimate $(approx "${ESTIMATE[$t]:-0}"))"
			built+=("$t") && total_est=$((total_est + ${ESTIMATE[$t]:-0}))
		else
			log "$t ok (cached)"
			cached+=("$t")
		fi
	else
		stop_heartbeat
		if $check_only; then
			log "$t missing"
		else
			log "$t FAILED after $(dur $((SECONDS - start)))"
		fi
		for r in "${REQUIRED[@]}"; do [[ $r == "$t" ]] && rc=1; done
		$check_only && rc=1
	fi
done
if ! $check_only && [[ ${#built[@]} -gt 0 ]]; then
	log "built ${built[*]} in $(dur "$SECONDS") (estimate $(approx "$total_est")); ${#cached[@]} already in $BIN"
fi
exit $rc
