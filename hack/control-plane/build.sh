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

# Stamp both version packages, as upstream's hack/lib/version.sh does: unstamped binaries report
# v0.0.0-master, which is not semver, and helm's kubeVersion checks then fail.
minor="${K8S_VERSION#v1.}"; minor="${minor%%.*}"
stamp=""
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  stamp+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
  stamp+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
done
helm_version="$(sed -n 's/^require helm.sh\/helm\/v3 \(v[0-9.]*\).*/\1/p' "$here/tools/helm/go.mod")"
helm_stamp="-X helm.sh/helm/v3/internal/version.version=$helm_version -X helm.sh/helm/v3/internal/version.gitTreeState=clean"

key="$( { go version; echo "$BUILD_TAGS $stamp $helm_stamp"; cat "$0" "$here"/tools/*/go.mod "$here"/tools/*/go.sum; } \
  | sha256sum | cut -c1-16)"
bin="$cache/bin/$key"
binaries=(etcd kube-apiserver kube-controller-manager kube-scheduler kubectl kwok helm)

complete() {
  for b in "${binaries[@]}"; do [ -x "$bin/$b" ] || return 1; done
  "$bin/kubectl" version --client 2>/dev/null | grep -q "$K8S_VERSION"
}

if complete; then
  log "binaries up to date in $bin"
  echo "$bin"
  exit 0
fi

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

log "first build of the control plane: about 20-40 min on 2 cores with cold caches; later runs reuse $bin"
(cd "$here/tools/k8s" && go mod download) >&2
build k8s "$bin.partial/" \
  k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
  k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubectl
# -o with a file name: a /v3 module path would otherwise name the binary "v3"/"server".
build k8s "$bin.partial/etcd" go.etcd.io/etcd/server/v3
build kwok "$bin.partial/kwok" sigs.k8s.io/kwok/cmd/kwok
build helm "$bin.partial/helm" helm.sh/helm/v3/cmd/helm

rm -rf "$bin" && mv "$bin.partial" "$bin"
complete || { log "ERROR: binaries built but '$bin/kubectl version' does not report $K8S_VERSION"; exit 1; }
log "all binaries built in $((SECONDS - started)) s: $bin"
echo "$bin"
