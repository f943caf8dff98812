#!/usr/bin/env bash
# Creates the kind cluster of hack/kind-config.yaml (unless it exists) and makes its workers look
# like GPU nodes to the scheduler: every node labelled nvidia.com/gpu.count=N gets `nvidia.com/gpu: N` in its status
# capacity, the way Kubernetes' "Advertise Extended Resources for a Node" task does it (a JSON
# patch on the node's status subresource; the kubelet then copies it into allocatable and keeps
# it). The GFD-style labels themselves come from the kind config. Idempotent.
#
#   KIND      kind binary (default: kind on PATH)
#   KUBECTL   kubectl binary (default: kubectl on PATH)
set -euo pipefail

config="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/kind-config.yaml"
kind="${KIND:-kind}"
kubectl="${KUBECTL:-kubectl}"
name="$(sed -n 's/^name: *//p' "$config")"
context="kind-$name"   # the kubeconfig context kind writes for a cluster
k() { "$kubectl" --context "$context" "$@"; }

command -v "$kind" >/dev/null || { echo "kind not found (set KIND=/path/to/kind); it needs Docker or Podman" >&2; exit 1; }
if ! "$kind" get clusters 2>/dev/null | grep -qx "$name"; then
  "$kind" create cluster --config "$config"
fi

k wait --for=condition=Ready nodes --all --timeout=180s >/dev/null
nodes="$(k get nodes -l nvidia.com/gpu.count \
  -o jsonpath='{range .items[*]}{.metadata.name}={.metadata.labels.nvidia\.com/gpu\.count}{"\n"}{end}')"
[ -n "$nodes" ] || { echo "no node carries the nvidia.com/gpu.count label: is this the modeljob kind cluster?" >&2; exit 1; }

while IFS='=' read -r node count; do
  # "~1" escapes the "/" of nvidia.com/gpu inside a JSON-pointer path.
  k patch node "$node" --subresource=status --type=json \
    -p "[{\"op\": \"add\", \"path\": \"/status/capacity/nvidia.com~1gpu\", \"value\": \"$count\"}]" >/dev/null
  echo "$node: nvidia.com/gpu=$count"
done <<<"$nodes"

# The kubelet copies new capacity into allocatable on its next status update (seconds).
for _ in $(seq 30); do
  missing="$(k get nodes -l nvidia.com/gpu.count \
    -o jsonpath='{range .items[*]}{.metadata.name} {.status.allocatable.nvidia\.com/gpu}{"\n"}{end}' \
    | awk 'NF < 2')"
  [ -z "$missing" ] && { echo "GPU capacity is allocatable on every labelled node"; exit 0; }
  sleep 2
done
echo "nvidia.com/gpu still missing from allocatable on: $missing" >&2
exit 1
