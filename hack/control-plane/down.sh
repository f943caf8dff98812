#!/usr/bin/env bash
# Stops the local control plane started by up.sh (SIGTERM, then SIGKILL after a timeout, newest
# component first) and removes its state: etcd data, certificates, kubeconfigs and logs.
#
#   MODELJOB_STOP_TIMEOUT   seconds to wait after SIGTERM before SIGKILL (default 15)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=lib.sh
source "$here/lib.sh"
grace="${MODELJOB_STOP_TIMEOUT:-15}"
# One up.sh/down.sh at a time (two test sessions starting together would race for the ports).
mkdir -p "$(dirname "$state")"
exec 9>"$state.lock"
flock 9

# stop <component>...: SIGTERM to all of them at once, then wait; SIGKILL what outlives the grace.
stop() {
  local name pid deadline
  local -a running=()
  for name in "$@"; do
    if pid="$(live_pid "$name")"; then
      log "stopping $name (pid $pid)"
      kill -TERM "$pid" 2>/dev/null && running+=("$name:$pid")
    elif [ -f "$pids/$name.pid" ]; then
      log "$name not running (stale pid file)"
    fi
  done
  deadline=$((SECONDS + grace))
  for entry in "${running[@]}"; do
    name="${entry%%:*}" pid="${entry##*:}"
    while kill -0 "$pid" 2>/dev/null; do
      if [ "$SECONDS" -ge "$deadline" ]; then
        log "$name still running after ${grace}s: SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        break
      fi
      sleep 0.1
    done
  done
}

# Clients of the API server first (together), then the API server, then its storage.
# The operator started by `make demo` first, so it does not log errors about a vanishing API.
stop modeljob-operator
stop kwok kube-scheduler kube-controller-manager
stop kube-apiserver
stop etcd

# The etcd data may sit on tmpfs behind a symlink (see up.sh); remove only a directory up.sh made.
if [ -L "$state/etcd" ]; then
  target="$(readlink "$state/etcd")"
  case "$target" in /dev/shm/modeljob-etcd.*) rm -rf "$target" ;; esac
fi
rm -rf "$state"
log "control plane stopped; removed $state"
