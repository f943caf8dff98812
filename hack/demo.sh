#!/usr/bin/env bash
# The demo: install the ModelJob CRD, start the operator in the background, apply every example
# in crds/examples/, and show where each replica went and why.
#
#   hack/demo.sh PYTHON      PYTHON: the project's venv interpreter (`make demo` passes it)
#
# Run after `make cluster` (control plane up, the `mixed` preset's fake GPU nodes applied). The
# operator's log is $MODELJOB_CACHE/cluster/logs/modeljob-operator.log; a second run restarts it
# with the current code. Settings come from MODELJOB_* variables (docs/settings.md), e.g.
# MODELJOB_QUEUE__POLICY=shortest-job-first hack/demo.sh .venv/bin/python
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
py="${1:?usage: hack/demo.sh PYTHON}"
cache="${MODELJOB_CACHE:-$HOME/.cache/modeljob}"
state="$cache/cluster"
namespace="${MODELJOB_DEMO_NAMESPACE:-demo}"
metrics_port="${MODELJOB_SERVER__METRICS_PORT:-9090}"
liveness_port="${MODELJOB_SERVER__LIVENESS_PORT:-8080}"
pid_file="$state/pids/modeljob-operator.pid"
log_file="$state/logs/modeljob-operator.log"
export KUBECONFIG="$state/kubeconfig"

say() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
[ -f "$KUBECONFIG" ] || { echo "no cluster at $state: run \`make cluster\` first" >&2; exit 1; }
kubectl="$("$repo/hack/control-plane/build.sh" 2>/dev/null | tail -n 1)/kubectl"
[ -x "$kubectl" ] || { echo "kubectl not built: run \`make cluster\` first" >&2; exit 1; }
k() { "$kubectl" "$@"; }

say "Installing the ModelJob CRD"
k apply --server-side --force-conflicts -f "$repo/crds/modeljob.dev_modeljobs.yaml" >/dev/null
k wait --for=condition=Established --timeout=60s crd/modeljobs.modeljob.dev >/dev/null
k get crd modeljobs.modeljob.dev

say "Two more H100 nodes, and a zone for each pair (a replica of the 405B example spans two nodes)"
"$py" -m modeljob nodes apply --from "$repo/hack/demo-nodes.yaml" --kubeconfig "$KUBECONFIG" --wait 60 >/dev/null
k label node gpu-h100-0 gpu-h100-1 topology.kubernetes.io/zone=zone-a --overwrite >/dev/null
k label node gpu-h100-b-0 gpu-h100-b-1 topology.kubernetes.io/zone=zone-b --overwrite >/dev/null
k get nodes -l nvidia.com/gpu.product=NVIDIA-H100-80GB-HBM3 -L topology.kubernetes.io/zone

say "Starting the operator (log: $log_file)"
if [ -f "$pid_file" ] && kill -0 "$(cat "$pid_file")" 2>/dev/null; then
  echo "stopping the operator started by an earlier demo (pid $(cat "$pid_file"))"
  kill -TERM "$(cat "$pid_file")" || true
  for _ in $(seq 100); do kill -0 "$(cat "$pid_file")" 2>/dev/null || break; sleep 0.1; done
fi
mkdir -p "$(dirname "$pid_file")" "$(dirname "$log_file")"
# --kubeconfig on the command line also marks the process as this cluster's (see lib.sh live_pid).
MODELJOB_SERVER__HOST=127.0.0.1 MODELJOB_SERVER__METRICS_PORT="$metrics_port" MODELJOB_EXTENDER__HOST=127.0.0.1 \
  MODELJOB_SERVER__LIVENESS_PORT="$liveness_port" \
  nohup "$py" -m modeljob run --kubeconfig "$KUBECONFIG" >>"$log_file" 2>&1 </dev/null &
echo $! >"$pid_file"
for _ in $(seq 300); do
  if curl -fsS "http://127.0.0.1:$liveness_port/healthz" >/dev/null 2>&1; then break; fi
  kill -0 "$(cat "$pid_file")" 2>/dev/null || { echo "the operator exited; its log:" >&2; tail -n 30 "$log_file" >&2; exit 1; }
  sleep 0.2
done
curl -fsS "http://127.0.0.1:$liveness_port/healthz" >/dev/null || { echo "operator not healthy; see $log_file" >&2; exit 1; }
echo "operator running (pid $(cat "$pid_file")), healthy at http://127.0.0.1:$liveness_port/healthz"

say "Applying crds/examples/ in namespace $namespace"
k get namespace "$namespace" >/dev/null 2>&1 || k create namespace "$namespace" >/dev/null
k -n "$namespace" apply -f "$repo/crds/examples/"

say "Waiting for every job to be placed (or to say why it cannot be)"
settled() {
  # Read first, then grep: with pipefail, `grep -q` leaving early fails kubectl's write (SIGPIPE),
  # which read as "settled" at once, before any job was placed.
  local phases
  phases="$(k -n "$namespace" get modeljobs -o jsonpath='{range .items[*]}{.status.phase}{"\n"}{end}')"
  ! grep -qvE '^(Running|Succeeded|Failed|Unschedulable|Invalid)$' <<<"$phases"
}
for _ in $(seq 120); do settled && break; sleep 0.5; done
k -n "$namespace" get modeljobs

say "Where each replica went, and why"
k -n "$namespace" get modeljobs -o json \
  | "$py" "$repo/hack/demo_report.py" <(k -n "$namespace" get events -o json)

multinode=llama-3-1-405b-chat
say "Llama-3.1-405B: one replica, a group of two pods on two whole nodes of one zone"
k -n "$namespace" get modeljob "$multinode"
k -n "$namespace" get pods -l "modeljob.dev/job=$multinode" -o wide \
  -L modeljob.dev/replica,modeljob.dev/group-member,modeljob.dev/group-role
leader="$(k -n "$namespace" get pods -l "modeljob.dev/job=$multinode,modeljob.dev/group-role=leader" \
  -o jsonpath='{.items[0].metadata.name}' 2>/dev/null || true)"
if [ -n "$leader" ]; then
  echo; echo "the environment of its leader, pod $leader (what LWS's vLLM recipe and torchrun read):"
  k -n "$namespace" get pod "$leader" \
    -o jsonpath='{range .spec.containers[0].env[*]}{"  "}{.name}={.value}{"\n"}{end}' \
    | grep -E '^  (LWS_|MODELJOB_|MASTER_|WORLD_SIZE|RANK|NODE_RANK)'
fi

say "Look further"
cat <<EOF
  kubectl:   export KUBECONFIG=$KUBECONFIG; alias kubectl=$kubectl
  a job:     kubectl -n $namespace describe mj llama-3-1-70b-chat    (status, conditions, Events)
  its pods:  kubectl -n $namespace get pods -o wide
  metrics:   curl -s http://127.0.0.1:$metrics_port/metrics | grep ^modeljob_
  the log:   tail -f $log_file
  try:       kubectl delete node gpu-h100-1    (its gangs go back to the queue and are placed again)
  stop:      kill \$(cat $pid_file)    (the operator); make cluster-down (everything)
EOF
