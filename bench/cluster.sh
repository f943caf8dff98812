#!/usr/bin/env bash
# Benchmarks the local control plane and rewrites the `## Local control plane` section of
# docs/benchmarks.md with the results:
#   - start-up with the binaries built (down.sh, then up.sh), and a no-op up.sh on a running cluster
#   - loading the 1,213 openb GPU nodes until every one is Ready (modeljob nodes apply --wait)
#   - resident memory (RSS) of each control-plane process with those nodes, and the sum
#   - deleting them again
# The cold build time is read from the stderr of a first hack/control-plane/build.sh, saved in the
# file BUILD_LOG names (unset: not reported): re-running a cold build would mean deleting the Go
# caches.
#
# It runs its own cluster (registered as "bench-cluster" in tests/cluster.py, which gives its
# state directory and ports) and removes it at the end, so a development cluster and the tests using it are left
# alone. Both share the machine's CPUs, though: measure on a quiet machine.
#
#   bench/cluster.sh [PYTHON]      PYTHON: the project's venv interpreter (default: python3)
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
py="${1:-python3}"
csv="${OPENB_NODES:-$repo/data/openb/csv/openb_node_list_gpu_node.csv}"
build_log="${BUILD_LOG:-}"
out="$(mktemp)"
cp_dir="$repo/hack/control-plane"
exports="$(cd "$repo" && "$py" -m tests.cluster exports bench-cluster)"
eval "$exports"   # MODELJOB_CLUSTER_DIR and the MODELJOB_*_PORT variables
trap 'rm -f "$out"; "$cp_dir/down.sh" >/dev/null 2>&1 || true' EXIT
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }

echo "==> down.sh, then up.sh with the binaries built" >&2
"$cp_dir/down.sh" >/dev/null 2>&1 || true
"$cp_dir/build.sh" >/dev/null 2>&1   # outside the timing: a no-op once built
t0="$(now)"; "$cp_dir/up.sh" >/dev/null 2>&1; t1="$(now)"
warm_up="$(secs "$t0" "$t1")"
t0="$(now)"; "$cp_dir/up.sh" >/dev/null 2>&1; t1="$(now)"
noop_up="$(secs "$t0" "$t1")"
export KUBECONFIG="$MODELJOB_CLUSTER_DIR/kubeconfig"

nodes="$(($(wc -l <"$csv") - 1))"
echo "==> loading $nodes openb nodes until Ready" >&2
t0="$(now)"
apply_out="$(cd "$repo" && "$py" -m modeljob nodes apply --from "$csv" --wait 600)"
t1="$(now)"
load="$(secs "$t0" "$t1")"
echo "$apply_out" >&2

sleep 30   # let informers, leases and kwok's stage queues settle before reading memory
rss_table=""
rss_total=0
for name in etcd kube-apiserver kube-controller-manager kube-scheduler kwok; do
  pid="$(cat "$MODELJOB_CLUSTER_DIR/pids/$name.pid")"
  kib="$(awk '/^VmRSS:/ { print $2 }' "/proc/$pid/status")"
  rss_total=$((rss_total + kib))
  rss_table+="| $name | $((kib / 1024)) |"$'\n'
done

echo "==> deleting the fake nodes" >&2
t0="$(now)"
(cd "$repo" && "$py" -m modeljob nodes delete --all-fake) >&2
t1="$(now)"
delete="$(secs "$t0" "$t1")"

cold="not measured here (BUILD_LOG names no log of a complete first build)"
if [ -n "$build_log" ] && grep -q "all binaries built in" "$build_log" 2>/dev/null && grep -q "first build" "$build_log"; then
  cold="$(sed -n 's/.*all binaries built in \([0-9]*\) s.*/\1/p' "$build_log" | head -n 1) s"
fi

cat >"$out" <<EOF
## Local control plane

Measured by \`bench/cluster.sh\` (\`make bench\`) on $(date -u +%Y-%m-%d), on a machine with
$(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')), $(free -g | awk '/^Mem:/ { print $2 }') GiB RAM,
Kubernetes v1.36.3, etcd 3.6.8, kwok v0.8.0. Other work shared the machine, so treat the times as
upper bounds. The cold build was taken from the build log of a first \`hack/control-plane/build.sh\`
run with empty Go build cache (modules already downloaded).

| what | result | command |
| --- | ---: | --- |
| cold build of the 7 binaries | $cold | \`hack/control-plane/build.sh\` (empty GOCACHE) |
| start-up, binaries built | $warm_up s | \`hack/control-plane/down.sh; hack/control-plane/up.sh\` |
| up.sh on a running cluster (no-op) | $noop_up s | \`hack/control-plane/up.sh\` |
| load $nodes openb nodes until all Ready | $load s | \`modeljob nodes apply --from $(basename "$csv") --wait 600\` |
| resident memory with $nodes nodes (sum of RSS) | $((rss_total / 1024)) MiB | \`VmRSS\` of each process, 30 s after the load |
| delete the $nodes nodes | $delete s | \`modeljob nodes delete --all-fake\` |

RSS per process with $nodes nodes (MiB):

| process | RSS |
| --- | ---: |
$rss_table
\`modeljob nodes apply\` said: $(echo "$apply_out" | tr '\n' ' ' | sed 's/ *$//').
EOF

"$py" "$repo/bench/report.py" "$out"
cat "$out"
