#!/usr/bin/env bash
# Builds the local control plane (etcd, kube-apiserver, kube-controller-manager, kube-scheduler,
# kubectl, kwok, helm) from the pinned wrapper modules under tools/, into a cache directory keyed
# by everything that changes the output, so a second run builds nothing.
#
# Prints the binary directory on the last line of stdout. Progress goes to stderr.
#
#   MODELJOB_CACHE   cache root (default $HOME/.cache/modeljob)
#   GO_BUILD_PARALLEL  go build -p (default: number of CPUs)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cache="${MODELJOB_CACHE:-$HOME/.cache/modeljob}"

export GOTOOLCHAIN=local          # a too-new go line fails loudly instead of downloading a toolchain
export GOMODCACHE="$cache/go-mod"
export GOCACHE="$cache/go-build"
export GOFLAGS="-modcacherw -buildvcs=false"
export CGO_ENABLED=0              # upstream builds these binaries static

K8S_VERSION=v1.36.3               # must match tools/k8s/go.mod
BUILD_TAGS="selinux,notest,grpcnotrace"

log() { printf '[build %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
command -v go >/dev/null || { log "ERROR: go not found on PATH (Go >= 1.26 builds the control plane)"; exit 1; }

# Stamp both version packages, as upstream's hack/lib/version.sh does: unstamped binaries report
# v0.0.0-master, which is not semver, and helm's kubeVersion checks then fail.
minor="${K8S_VERSION#v1.}"; minor="${minor%%.*}"
stamp=""
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  stamp+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
  stamp+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
done
# The require line sits inside a `require (` block (tab-indented) after `go mod tidy`.
helm_version="$(sed -n 's/^\(require\)\{0,1\}[[:space:]]*helm\.sh\/helm\/v3 \(v[0-9.]*\).*/\2/p' "$here/tools/helm/go.mod")"
[ -n "$helm_version" ] || { echo "build.sh: no helm.sh/helm/v3 requirement in tools/helm/go.mod" >&2; exit 1; }
helm_stamp="-X helm.sh/helm/v3/internal/version.version=$helm_version -X helm.sh/helm/v3/internal/version.gitTreeState=clean"

key="$( { go version; echo "$BUILD_TAGS $stamp $helm_stamp"; cat "$0" "$here"/tools/*/go.mod "$here"/tools/*/go.sum; } \
  | sha256sum | cut -c1-16)"
bin="$cache/bin/$key"
binaries=(etcd kube-apiserver kube-controller-manager kube-scheduler kubectl kwok helm)

complete() {
  for b in "${binaries[@]}"; do [ -x "$bin/$b" ] || return 1; done
  # Capture, then match: `cmd | grep -q` under pipefail fails at random when grep exits before
  # cmd has written its last line (SIGPIPE).
  local kubectl_version helm_short
  kubectl_version="$("$bin/kubectl" version --client 2>/dev/null)" || return 1
  helm_short="$("$bin/helm" version --short 2>/dev/null)" || return 1
  [[ "$kubectl_version" == *"$K8S_VERSION"* && "$helm_short" == "$helm_version"* ]]
}

if complete; then
  log "binaries up to date in $bin"
  echo "$bin"
  exit 0
fi

# One build at a time (test sessions and up.sh may start together); the winner's result is reused.
mkdir -p "$cache"
exec 8>"$cache/build.lock"
flock 8
if complete; then
  log "binaries built meanwhile in $bin"
  echo "$bin"
  exit 0
fi
rm -rf "$bin.partial"
mkdir -p "$bin.partial"
started=$SECONDS
build() { # build <module dir> <output> <package...>
  local dir="$1" out="$2"; shift 2
  log "building $* (module tools/$dir)"
  local t0=$SECONDS
  (cd "$here/tools/$dir" && go build ${GO_BUILD_PARALLEL:+-p "$GO_BUILD_PARALLEL"} -trimpath \
      -tags "$BUILD_TAGS" -ldflags "-s -w $stamp $helm_stamp" -o "$out" "$@")
  log "  done in $((SECONDS - t0)) s"
}

log "first build of the control plane: about 12 min on 2 cores with an empty Go build cache; later runs reuse $bin"
(cd "$here/tools/k8s" && go mod download) >&2
build k8s "$bin.partial/" \
  k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
  k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubectl
# -o with a file name: a /v3 module path would otherwise name the binary "v3"/"server".
build k8s "$bin.partial/etcd" go.etcd.io/etcd/server/v3
build kwok "$bin.partial/kwok" sigs.k8s.io/kwok/cmd/kwok
build helm "$bin.partial/helm" helm.sh/helm/v3/cmd/helm

rm -rf "$bin" && mv "$bin.partial" "$bin"
complete || { log "ERROR: binaries built but kubectl/helm do not report $K8S_VERSION/$helm_version"; exit 1; }
log "all binaries built in $((SECONDS - started)) s: $bin"
echo "$bin"
