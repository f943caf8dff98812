# Shared by up.sh and down.sh: where the cluster's state lives, its ports, and how a component's
# PID file is checked. Sourced, never run.
# shellcheck shell=bash

cache="${MODELJOB_CACHE:-$HOME/.cache/modeljob}"
# Outside the git clone, so every clone (and every pytest session) reuses one running cluster.
# MODELJOB_CLUSTER_DIR runs a second, independent cluster (give it other ports too): benchmarks.
state="${MODELJOB_CLUSTER_DIR:-$cache/cluster}"
pids="$state/pids"
logs="$state/logs"
pki="$state/pki"

# Loopback ports; override when they clash with something already listening. Every other cluster
# the tests and benchmarks start adds one registered offset to each of these (tests/cluster.py,
# which reads the defaults from the lines below: keep their `"${MODELJOB_X_PORT:-N}"` form).
ETCD_PORT="${MODELJOB_ETCD_PORT:-12379}"
ETCD_PEER_PORT="${MODELJOB_ETCD_PEER_PORT:-12380}"
APISERVER_PORT="${MODELJOB_APISERVER_PORT:-16443}"
KCM_PORT="${MODELJOB_KCM_PORT:-10357}"
SCHEDULER_PORT="${MODELJOB_SCHEDULER_PORT:-10359}"
KWOK_PORT="${MODELJOB_KWOK_PORT:-10347}"

# Start order; down.sh stops them in reverse.
COMPONENTS=(etcd kube-apiserver kube-controller-manager kube-scheduler kwok)

log() { printf '[cluster %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# The PID recorded for a component, if that process is alive AND is ours: its command line names
# this state directory, so a PID recycled by an unrelated process after a reboot never matches.
live_pid() { # live_pid <component>
  local file="$pids/$1.pid" pid
  [ -f "$file" ] || return 1
  pid="$(cat "$file")"
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$state/" || return 1
  echo "$pid"
}
