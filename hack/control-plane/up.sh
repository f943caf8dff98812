#!/usr/bin/env bash
# Starts the local control plane as loopback processes: etcd, kube-apiserver (TLS, client-cert
# authentication, Node+RBAC authorization), kube-controller-manager, kube-scheduler and the kwok
# controller, which turns Nodes annotated kwok.x-k8s.io/node=fake into Ready fake nodes and runs
# the pods bound to them. Builds the binaries first (a no-op once built).
#
# Idempotent: components already running are left alone, dead ones (stale PID files) are
# restarted. State lives in ${MODELJOB_CACHE:-$HOME/.cache/modeljob}/cluster/, outside the clone
# (MODELJOB_CLUSTER_DIR: another directory, for a second cluster on other ports).
# The last line of stdout is the `export KUBECONFIG=...` line; progress goes to stderr.
#
#   MODELJOB_CLUSTER_TIMEOUT       seconds to wait for each component to be healthy (default 120)
#   MODELJOB_SCHEDULER_EXTENDERS   a YAML file holding an `extenders:` list, appended to the
#                                  KubeSchedulerConfiguration (see "EXTENDERS" below)
#   MODELJOB_*_PORT                loopback ports, see lib.sh
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=lib.sh
source "$here/lib.sh"
timeout="${MODELJOB_CLUSTER_TIMEOUT:-120}"
# How long a fake node's Lease lasts; kwok renews it every quarter of that (10 s by default, as a
# kubelet does). A benchmark of the schedulers alone may lengthen it: 5,000 fake kubelets renewing
# every 10 s are ~500 writes a second that a real control plane serves on machines of its own.
node_lease_seconds="${MODELJOB_NODE_LEASE_SECONDS:-40}"
# One up.sh/down.sh at a time (two test sessions starting together would race for the ports).
mkdir -p "$(dirname "$state")"
exec 9>"$state.lock"
flock 9
started_at=$SECONDS

bin="$("$here/build.sh" | tail -n 1)"
kwok_src="$cache/go-mod/sigs.k8s.io/kwok@v0.8.0/kustomize"   # stage YAMLs, read in place
[ -d "$kwok_src" ] || { log "ERROR: kwok module source missing at $kwok_src (run build.sh)"; exit 1; }

mkdir -p "$pids" "$logs" "$pki" "$state/kubeconfigs"
kubeconfig="$state/kubeconfig"
server="https://127.0.0.1:$APISERVER_PORT"

# --- certificates (once) -------------------------------------------------------------------------
# One CA signs the serving cert and a client cert per identity. The scheduler and controller
# manager get their bootstrap-RBAC identities (system:kube-scheduler, system:kube-controller-manager)
# and kwok its own ClusterRole, so RBAC is exercised the way a real cluster exercises it; only the
# admin kubeconfig is in system:masters.
new_cert() { # new_cert <name> <subject> <extensions> [<ca name>]
  local name="$1" subject="$2" ext="$3" ca="${4:-ca}"
  openssl genrsa -out "$pki/$name.key" 2048 2>/dev/null
  openssl req -new -key "$pki/$name.key" -subj "$subject" -out "$pki/$name.csr" 2>/dev/null
  openssl x509 -req -in "$pki/$name.csr" -CA "$pki/$ca.crt" -CAkey "$pki/$ca.key" -CAcreateserial \
    -days 3650 -sha256 -out "$pki/$name.crt" -extfile <(printf '%s\n' "$ext") 2>/dev/null
  rm -f "$pki/$name.csr"
}
client_ext="basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=clientAuth"
if [ ! -s "$pki/ca.crt" ]; then
  log "generating certificates in $pki"
  openssl req -x509 -newkey rsa:2048 -nodes -keyout "$pki/ca.key" -out "$pki/ca.crt" -days 3650 \
    -subj "/CN=modeljob-local-ca" 2>/dev/null
  new_cert apiserver "/CN=kube-apiserver" "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,IP:127.0.0.1,IP:10.96.0.1"
  new_cert admin "/O=system:masters/CN=modeljob-admin" "$client_ext"
  new_cert kube-controller-manager "/CN=system:kube-controller-manager" "$client_ext"
  new_cert kube-scheduler "/CN=system:kube-scheduler" "$client_ext"
  new_cert kwok "/CN=kwok-controller" "$client_ext"
  # Service-account tokens: the apiserver signs with the private key, verifies with the public.
  openssl genrsa -out "$pki/sa.key" 2048 2>/dev/null
  openssl rsa -in "$pki/sa.key" -pubout -out "$pki/sa.pub" 2>/dev/null
  chmod 600 "$pki"/*.key
fi
# The front-proxy (request-header) CA, as kubeadm sets it up: the scheduler and controller manager
# read it from the extension-apiserver-authentication ConfigMap and log errors every few seconds
# when it is missing; aggregated API servers (metrics-server) need it too.
if [ ! -s "$pki/front-proxy-ca.crt" ]; then
  openssl req -x509 -newkey rsa:2048 -nodes -keyout "$pki/front-proxy-ca.key" -out "$pki/front-proxy-ca.crt" \
    -days 3650 -subj "/CN=modeljob-front-proxy-ca" 2>/dev/null
  new_cert front-proxy-client "/CN=front-proxy-client" "$client_ext" front-proxy-ca
  chmod 600 "$pki"/*.key
fi

write_kubeconfig() { # write_kubeconfig <file> <cert name>
  local b64="base64 -w0"
  cat >"$1.tmp" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: modeljob-local
  cluster:
    server: $server
    certificate-authority-data: $($b64 <"$pki/ca.crt")
users:
- name: $2
  user:
    client-certificate-data: $($b64 <"$pki/$2.crt")
    client-key-data: $($b64 <"$pki/$2.key")
contexts:
- name: modeljob-local
  context: {cluster: modeljob-local, user: $2}
current-context: modeljob-local
EOF
  chmod 600 "$1.tmp" && mv "$1.tmp" "$1"
}
write_kubeconfig "$kubeconfig" admin
for who in kube-controller-manager kube-scheduler kwok; do
  write_kubeconfig "$state/kubeconfigs/$who.kubeconfig" "$who"
done

# --- etcd data on tmpfs when there is one ---------------------------------------------------------
# The data is disposable test state; tmpfs spares the disk and fsyncs. $state/etcd points at it.
if [ -L "$state/etcd" ] && [ ! -e "$state/etcd" ]; then
  # The tmpfs behind the link was cleared (a reboot, a new CI machine): start from empty data.
  log "etcd data on tmpfs is gone; starting with an empty store"
  rm -f "$state/etcd"
fi
if [ ! -e "$state/etcd" ]; then
  if [ -d /dev/shm ] && [ -w /dev/shm ]; then
    shm="$(mktemp -d /dev/shm/modeljob-etcd.XXXXXX)"
    ln -s "$shm" "$state/etcd"
  else
    mkdir -p "$state/etcd"
  fi
  chmod 700 "$(readlink -f "$state/etcd")"
fi

# --- kube-scheduler configuration ----------------------------------------------------------------
scheduler_config="$state/kube-scheduler.yaml"
{
  cat <<EOF
apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
clientConnection:
  kubeconfig: $state/kubeconfigs/kube-scheduler.kubeconfig
leaderElection:
  leaderElect: false
# Score every feasible node (the default samples a fraction of them above ~100 nodes), so an
# extender and our benchmarks see the whole cluster.
percentageOfNodesToScore: 100
# Short backoffs: an unschedulable pod is retried within seconds once capacity appears.
podInitialBackoffSeconds: 1
podMaxBackoffSeconds: 2
profiles:
- schedulerName: default-scheduler
EOF
  # EXTENDERS: the scheduler-extender work plugs in here. Point MODELJOB_SCHEDULER_EXTENDERS at a
  # file that holds a top-level `extenders:` list (kubescheduler.config.k8s.io/v1 Extender
  # entries); it is appended verbatim, and a changed file restarts only kube-scheduler.
  if [ -n "${MODELJOB_SCHEDULER_EXTENDERS:-}" ]; then
    [ -f "$MODELJOB_SCHEDULER_EXTENDERS" ] \
      || { log "ERROR: MODELJOB_SCHEDULER_EXTENDERS=$MODELJOB_SCHEDULER_EXTENDERS is not a file"; exit 1; }
    echo "# appended from $MODELJOB_SCHEDULER_EXTENDERS"
    cat "$MODELJOB_SCHEDULER_EXTENDERS"
  fi
} >"$scheduler_config.new"
if ! cmp -s "$scheduler_config.new" "$scheduler_config" 2>/dev/null; then
  if pid="$(live_pid kube-scheduler)"; then
    log "scheduler configuration changed: restarting kube-scheduler (pid $pid)"
    kill "$pid"
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    if kill -0 "$pid" 2>/dev/null; then  # else it would keep its port, and answer for the new one
      log "kube-scheduler still running 10 s after SIGTERM: SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    fi
  fi
  mv "$scheduler_config.new" "$scheduler_config"
else
  rm -f "$scheduler_config.new"
fi

# --- processes ------------------------------------------------------------------------------------
args_etcd=(
  --name=modeljob --data-dir="$state/etcd"
  --listen-client-urls="http://127.0.0.1:$ETCD_PORT" --advertise-client-urls="http://127.0.0.1:$ETCD_PORT"
  --listen-peer-urls="http://127.0.0.1:$ETCD_PEER_PORT"
  --initial-advertise-peer-urls="http://127.0.0.1:$ETCD_PEER_PORT"
  --initial-cluster="modeljob=http://127.0.0.1:$ETCD_PEER_PORT"
  --unsafe-no-fsync=true --log-level=warn
)
args_kube_apiserver=(
  --etcd-servers="http://127.0.0.1:$ETCD_PORT"
  --bind-address=127.0.0.1 --advertise-address=127.0.0.1 --secure-port="$APISERVER_PORT"
  --tls-cert-file="$pki/apiserver.crt" --tls-private-key-file="$pki/apiserver.key"
  --client-ca-file="$pki/ca.crt"
  --authorization-mode=Node,RBAC
  --service-account-issuer="$server" --service-account-key-file="$pki/sa.pub"
  --service-account-signing-key-file="$pki/sa.key"
  --service-cluster-ip-range=10.96.0.0/16 --allow-privileged=true
  --requestheader-client-ca-file="$pki/front-proxy-ca.crt" --requestheader-allowed-names=front-proxy-client
  --requestheader-username-headers=X-Remote-User --requestheader-group-headers=X-Remote-Group
  --requestheader-extra-headers-prefix=X-Remote-Extra-
  --proxy-client-cert-file="$pki/front-proxy-client.crt" --proxy-client-key-file="$pki/front-proxy-client.key"
  # A loopback address cannot be published in the `kubernetes` Service's endpoints; nothing here
  # routes to it anyway.
  --endpoint-reconciler-type=none
)
args_kube_controller_manager=(
  --kubeconfig="$state/kubeconfigs/kube-controller-manager.kubeconfig"
  --authentication-kubeconfig="$state/kubeconfigs/kube-controller-manager.kubeconfig"
  --authorization-kubeconfig="$state/kubeconfigs/kube-controller-manager.kubeconfig"
  --bind-address=127.0.0.1 --secure-port="$KCM_PORT" --leader-elect=false
  # Each controller acts as its own service account, as kubeadm runs it: the bootstrap
  # system:kube-controller-manager role only covers token minting, not the controllers' work.
  --use-service-account-credentials=true
  --service-account-private-key-file="$pki/sa.key" --root-ca-file="$pki/ca.crt"
  --cluster-signing-cert-file="$pki/ca.crt" --cluster-signing-key-file="$pki/ca.key"
  # Its default is under /usr/libexec, which it would otherwise create on this machine.
  --flex-volume-plugin-dir="$state/flexvolume"
  # Node lifecycle: kwok renews each node's Lease every quarter of its duration (10 s of 40 s by
  # default), well inside the grace period (the duration + 10 s), so fake nodes stay Ready and untainted.
  --node-monitor-period=5s --node-monitor-grace-period="$((node_lease_seconds + 10))s"
)
args_kube_scheduler=(
  --config="$scheduler_config"
  --authentication-kubeconfig="$state/kubeconfigs/kube-scheduler.kubeconfig"
  --authorization-kubeconfig="$state/kubeconfigs/kube-scheduler.kubeconfig"
  --bind-address=127.0.0.1 --secure-port="$SCHEDULER_PORT"
)
args_kwok=(
  --kubeconfig="$state/kubeconfigs/kwok.kubeconfig"
  --manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake
  # Stages come from Stage objects (applied below), so tests can add chaos stages at run time.
  --enable-crds=Stage
  # Keep a Lease per node (renewed every duration/4) so kcm's node lifecycle controller sees
  # healthy nodes; the heartbeat-with-lease stage then refreshes conditions only every ~10 min.
  --node-lease-duration-seconds="$node_lease_seconds"
  --cidr=10.244.0.0/16 --server-address="127.0.0.1:$KWOK_PORT"
)

ports_of() { # ports_of <component>: the loopback ports it listens on, the one it is checked on first
  case "$1" in
    etcd) echo "$ETCD_PORT $ETCD_PEER_PORT" ;;
    kube-apiserver) echo "$APISERVER_PORT" ;;
    kube-controller-manager) echo "$KCM_PORT" ;;
    kube-scheduler) echo "$SCHEDULER_PORT" ;;
    kwok) echo "$KWOK_PORT" ;;
  esac
}
health_url() {
  local port
  read -r port _ <<<"$(ports_of "$1")"
  case "$1" in
    etcd) echo "http://127.0.0.1:$port/health" ;;
    kube-apiserver) echo "https://127.0.0.1:$port/readyz" ;;
    kube-controller-manager | kube-scheduler) echo "https://127.0.0.1:$port/healthz" ;;
    kwok) echo "http://127.0.0.1:$port/healthz" ;;
  esac
}
healthy() {
  local out
  out="$(curl --silent --max-time 3 --cacert "$pki/ca.crt" --cert "$pki/admin.crt" --key "$pki/admin.key" \
    --insecure "$(health_url "$1")" 2>/dev/null)" || return 1
  case "$1" in etcd) [[ "$out" == *'"health":"true"'* ]] ;; *) [ "$out" = ok ] ;; esac
}

start() { # start <component>
  local name="$1" pid
  if pid="$(live_pid "$name")"; then
    log "$name already running (pid $pid)"
    return 0
  fi
  [ -f "$pids/$name.pid" ] && { log "$name: removing stale pid file"; rm -f "$pids/$name.pid"; }
  # A process already listening on one of its ports would answer the health check in its place
  # while this one exits, unable to bind: a leftover of another run that outlived its pid file.
  local port
  for port in $(ports_of "$name"); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      log "ERROR: port $port, which $name is to listen on, is taken: $(listener "$port")"
      log "stop that process, or give this cluster other ports (MODELJOB_*_PORT, see lib.sh)"
      exit 1
    fi
  done
  local -n args="args_${name//-/_}"
  log "starting $name (log: $logs/$name.log)"
  # setsid: the component outlives this script and the terminal or pytest session that ran it.
  # 9>&-: the component must not inherit (and so hold forever) the lock this script holds.
  setsid "$bin/$name" "${args[@]}" >>"$logs/$name.log" 2>&1 </dev/null 9>&- &
  echo $! >"$pids/$name.pid"
}

listener() { # listener <port>: who listens there, as far as ss can tell
  local who
  who="$(ss -Hltnp "sport = :$1" 2>/dev/null | grep -o 'users:(.*)' || true)"
  echo "${who:-a process ss cannot name}"
}

wait_healthy() { # wait_healthy <component>
  local name="$1" deadline=$((SECONDS + timeout))
  until healthy "$name"; do
    # Alive is enough here: this script just started the pid. live_pid also matches the command
    # line, which until the child has exec'ed is still this script's, so on a busy machine it
    # read a component that was starting as one that had exited.
    if ! kill -0 "$(cat "$pids/$name.pid" 2>/dev/null)" 2>/dev/null; then
      log "ERROR: $name exited during start-up; last lines of $logs/$name.log:"
      tail -n 20 "$logs/$name.log" >&2
      exit 1
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      log "ERROR: $name not healthy after ${timeout}s ($(health_url "$name")); see $logs/$name.log:"
      tail -n 20 "$logs/$name.log" >&2
      exit 1
    fi
    sleep 0.2
  done
}

kubectl() { "$bin/kubectl" --kubeconfig="$kubeconfig" "$@"; }

all_up=true
for name in "${COMPONENTS[@]}"; do
  live_pid "$name" >/dev/null && healthy "$name" || { all_up=false; break; }
done
if $all_up; then
  log "control plane already running (state: $state)"
  echo "export KUBECONFIG=$kubeconfig"
  exit 0
fi

start etcd && wait_healthy etcd
start kube-apiserver && wait_healthy kube-apiserver

# kwok needs the Stage CRD before it starts, and its own RBAC. Its upstream ClusterRole is bound to
# our kwok-controller user instead of its in-cluster service account. Applying is idempotent.
kubectl apply --server-side --force-conflicts -f "$kwok_src/crd/bases/kwok.x-k8s.io_stages.yaml" >/dev/null
kubectl apply --server-side --force-conflicts -f "$kwok_src/rbac/role.yaml" >/dev/null
kubectl create clusterrolebinding kwok-controller --clusterrole=kwok-controller --user=kwok-controller \
  --dry-run=client -o yaml | kubectl apply --server-side --force-conflicts -f - >/dev/null
kubectl wait --for=condition=Established --timeout="${timeout}s" crd/stages.kwok.x-k8s.io >/dev/null
# kwok is healthy before its stage controllers run: they start once its informer has listed the
# Stages, and a list refused because the API server's authorizer has not seen the new binding yet
# is retried with the informer's backoff, while the fake nodes wait. Start it once RBAC lets it in.
kwok_can() { kubectl auth can-i "$@" --as=kwok-controller >/dev/null 2>&1; }
deadline=$((SECONDS + timeout))
until kwok_can list stages.kwok.x-k8s.io && kwok_can watch nodes && kwok_can patch nodes --subresource=status; do
  if [ "$SECONDS" -ge "$deadline" ]; then
    log "ERROR: kwok-controller still may not list stages or watch nodes after ${timeout}s (RBAC)"
    exit 1
  fi
  sleep 0.2
done
# kwok's default stages: initialize and keep nodes Ready (lease variant, see args_kwok), run pods
# bound to fake nodes, finish Job-owned pods, and delete pods in place of a kubelet.
for stage in node/fast/node-initialize node/heartbeat-with-lease/node-heartbeat-with-lease \
  pod/fast/pod-ready pod/fast/pod-complete pod/fast/pod-delete; do
  kubectl apply --server-side --force-conflicts -f "$kwok_src/stage/$stage.yaml" >/dev/null
done

start kube-controller-manager
start kube-scheduler
start kwok
for name in kube-controller-manager kube-scheduler kwok; do wait_healthy "$name"; done

log "control plane ready in $((SECONDS - started_at)) s (state: $state)"
log "add fake GPU nodes: modeljob nodes apply --preset mixed --kubeconfig $kubeconfig"
echo "export KUBECONFIG=$kubeconfig"
